"""Session ids, passwords and expiry tracking (sans-I/O: time is passed in).

Expiry uses ZooKeeper's tick buckets: a session touched at ``now`` expires at
``roundUp(now + timeout)`` to the next multiple of tickTime, so expiry happens between
``timeout`` and ``timeout + tickTime`` after the last request, as clients expect.
"""

from __future__ import annotations

import heapq
import os

from kernel.protocol import CONTAINER_EPHEMERAL_OWNER

_MASK64 = (1 << 64) - 1


class SessionIdGenerator:
    """ZooKeeper's scheme: server id in the top byte, clock bits, then a counter."""

    def __init__(self, server_id: int, now_ms: int) -> None:
        base = ((now_ms << 24) & _MASK64) >> 8
        self._next = base | (server_id << 56)

    def next_id(self) -> int:
        sid = self._next
        self._next += 1
        if sid == (CONTAINER_EPHEMERAL_OWNER & _MASK64) or sid == 0:
            sid = self._next
            self._next += 1
        # Keep ids in the signed 64-bit range clients use.
        return sid - (1 << 64) if sid >= 1 << 63 else sid


def new_password() -> bytes:
    """An unguessable 16-byte session password (carried in the createSession txn)."""
    return os.urandom(16)


class ExpiryTracker:
    """Deadline buckets for live sessions."""

    def __init__(self, tick_ms: int) -> None:
        self.tick_ms = max(1, tick_ms)
        self.deadline: dict[int, int] = {}
        self.buckets: dict[int, set[int]] = {}
        self._heap: list[int] = []

    def _round_up(self, t: int) -> int:
        return (t // self.tick_ms + 1) * self.tick_ms

    def touch(self, sid: int, timeout_ms: int, now_ms: int) -> None:
        when = self._round_up(now_ms + timeout_ms)
        old = self.deadline.get(sid)
        if old == when:
            return
        if old is not None:
            bucket = self.buckets.get(old)
            if bucket is not None:
                bucket.discard(sid)
        self.deadline[sid] = when
        bucket = self.buckets.get(when)
        if bucket is None:
            self.buckets[when] = {sid}
            heapq.heappush(self._heap, when)
        else:
            bucket.add(sid)

    def remove(self, sid: int) -> None:
        when = self.deadline.pop(sid, None)
        if when is not None:
            bucket = self.buckets.get(when)
            if bucket is not None:
                bucket.discard(sid)

    def expired(self, now_ms: int) -> list[int]:
        """Sessions whose deadline has passed; they are removed from tracking."""
        out: list[int] = []
        while self._heap and self._heap[0] <= now_ms:
            when = heapq.heappop(self._heap)
            for sid in self.buckets.pop(when, ()):
                if self.deadline.get(sid) == when:
                    del self.deadline[sid]
                    out.append(sid)
        return sorted(out)

    def next_deadline(self) -> int | None:
        return self._heap[0] if self._heap else None
