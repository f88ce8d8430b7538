"""Learner-sync streams of the LMDB store: SNAP (consistent tree read), DIFF, TRUNC."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel.acl import OPEN_ACL_UNSAFE
from kernel.storage import StorageError
from kernel.txn import CreateTxn, SetDataTxn, Txn
from plugins.storage_lmdb.store import LmdbStorage


def _commit(st: LmdbStorage, tree: object, txns: list[Txn]) -> None:
    for t in txns:
        tree.apply(t)  # type: ignore[attr-defined]
    st.append(txns)
    st.applied(txns, tree)  # type: ignore[arg-type]


def _create(z: int, path: str, data: bytes = b"v") -> Txn:
    return Txn(z, 0, 0, 1000 + z, 1, CreateTxn(path, data, OPEN_ACL_UNSAFE, 0, z))


def test_snap_then_diff_reaches_the_newest_state(tmp_path: Path) -> None:
    st = LmdbStorage(tmp_path, force_sync=False, retain_txns=0)
    tree = st.open()
    _commit(st, tree, [_create(1, "/a"), _create(2, "/b")])
    _commit(st, tree, [Txn(3, 0, 0, 1003, 5, SetDataTxn("/a", b"new", 1))])
    with st.sync_snapshot() as snap:
        # The persisted tree lags the log by at most one batch; its zxid says where.
        assert snap.zxid == 2
        paths = {p for p, _ in snap.nodes()}
        assert {"/a", "/b"} <= paths
        diff = list(st.log_since(snap.zxid))
    assert [t.zxid for t in diff] == [3]
    assert isinstance(diff[0].body, SetDataTxn) and diff[0].body.data == b"new"
    assert [t.zxid for t in st.log_since(0)] == [1, 2, 3]
    assert list(st.log_since(3)) == []
    st.close()


def test_diff_refuses_a_zxid_the_log_no_longer_reaches(tmp_path: Path) -> None:
    st = LmdbStorage(tmp_path, force_sync=False, retain_txns=1)
    tree = st.open()
    z = 0
    for _ in range(30):  # enough batches for retention to purge old entries
        txns = []
        for _ in range(100):
            z += 1
            txns.append(_create(z, f"/n{z}"))
        _commit(st, tree, txns)
    with pytest.raises(StorageError, match="cannot DIFF"):
        list(st.log_since(0))
    assert [t.zxid for t in st.log_since(z - 2)] == [z - 1, z]
    st.close()


def test_trunc_drops_unapplied_proposals_only(tmp_path: Path) -> None:
    st = LmdbStorage(tmp_path, force_sync=False)
    tree = st.open()
    _commit(st, tree, [_create(1, "/a")])
    _commit(st, tree, [_create(2, "/b")])  # persists the tree as of zxid 1
    st.append([_create(3, "/c"), _create(4, "/d")])  # logged, never applied
    assert st.truncate_log(2) == 2
    assert [t.zxid for t in st.log_since(0)] == [1, 2]
    with pytest.raises(StorageError, match="applied"):
        st.truncate_log(0)
    st.close()


def test_epochs_are_durable_across_reopen(tmp_path: Path) -> None:
    st = LmdbStorage(tmp_path, force_sync=False)
    st.open()
    assert st.epochs() == (0, 0)
    st.set_epochs(3, 2)
    st.close()
    again = LmdbStorage(tmp_path, force_sync=False)
    again.open()
    assert again.epochs() == (3, 2)
    again.close()
