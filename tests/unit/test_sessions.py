"""Session ids (§2.3) and tick-bucketed expiry (§10)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kernel.protocol import CONTAINER_EPHEMERAL_OWNER
from kernel.sessions import ExpiryTracker, SessionIdGenerator, new_password


def test_session_id_layout_matches_zookeeper() -> None:
    # §2.3: standalone ids look like 0x10000058f390000, 0x10000058f390001, ...
    gen = SessionIdGenerator(1, 0x58F39)
    assert gen.next_id() == 0x10000058F390000
    assert gen.next_id() == 0x10000058F390001


def test_session_id_top_byte_is_the_server_id() -> None:
    now = 1_700_000_000_123
    for server_id in (1, 2, 5, 127):
        gen = SessionIdGenerator(server_id, now)
        sid = gen.next_id()
        assert sid >> 56 == server_id
        assert sid & 0xFFFF == 0
        assert (sid >> 16) & 0xFF_FFFF_FFFF == now & 0xFF_FFFF_FFFF
        assert gen.next_id() == sid + 1


def test_session_ids_are_signed_64_bit() -> None:
    sid = SessionIdGenerator(200, 12345).next_id()
    assert -(2**63) <= sid < 0
    assert (sid + 2**64) >> 56 == 200


def test_session_id_skips_zero_and_the_container_marker() -> None:
    assert SessionIdGenerator(0, 0).next_id() == 1
    first = SessionIdGenerator(0x80, 0).next_id()
    assert first != CONTAINER_EPHEMERAL_OWNER
    assert first == CONTAINER_EPHEMERAL_OWNER + 1


def test_passwords_are_16_random_bytes() -> None:
    a, b = new_password(), new_password()
    assert len(a) == len(b) == 16 and a != b


def test_expiry_bucket_boundaries() -> None:
    t = ExpiryTracker(2000)
    t.touch(1, 4000, 0)  # roundUp(4000) = 6000
    assert t.next_deadline() == 6000
    assert t.expired(5999) == []
    assert t.expired(6000) == [1]
    assert t.expired(10**9) == []  # removed from tracking once reported


def test_touch_moves_the_deadline() -> None:
    t = ExpiryTracker(2000)
    t.touch(1, 4000, 0)
    t.touch(1, 4000, 2500)  # roundUp(6500) = 8000
    assert t.expired(7999) == []
    assert t.expired(8000) == [1]


def test_remove_stops_tracking() -> None:
    t = ExpiryTracker(2000)
    t.touch(1, 4000, 0)
    t.touch(2, 4000, 0)
    t.remove(1)
    t.remove(99)  # unknown: harmless
    assert t.expired(10**6) == [2]


def test_expired_sessions_are_sorted_across_buckets() -> None:
    t = ExpiryTracker(1000)
    for sid, when in [(5, 3000), (3, 1000), (9, 1000), (1, 2000)]:
        t.touch(sid, when, 0)
    assert t.expired(10**6) == [1, 3, 5, 9]


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 10_000), st.integers(0, 10**12), st.integers(0, 10**6))
def test_expiry_lands_between_timeout_and_timeout_plus_tick(tick: int, now: int,
                                                            timeout: int) -> None:
    t = ExpiryTracker(tick)
    t.touch(7, timeout, now)
    d = t.next_deadline()
    assert d is not None and d % tick == 0
    assert now + timeout < d <= now + timeout + tick
    assert t.expired(d - 1) == []
    assert t.expired(d) == [7]
