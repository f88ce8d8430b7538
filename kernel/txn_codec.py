"""Binary form of transactions (the log and, later, Zab proposals between peers).

Jute primitives, zkernel's own layout:
``long zxid, long session, int cxid, long time, int op, int kind, body``.
"""

from __future__ import annotations

from kernel.errors import ProtocolError
from kernel.jute import Reader, Writer
from kernel.records import ACL
from kernel.txn import (
    CheckTxn,
    CloseSessionTxn,
    CreateSessionTxn,
    CreateTxn,
    DeleteTxn,
    ErrorTxn,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
    Txn,
    TxnBody,
)

_CREATE, _DELETE, _SET_DATA, _SET_ACL, _CHECK, _ERROR, _CREATE_SESSION, _CLOSE_SESSION, \
    _MULTI = range(1, 10)


def _w_acl(w: Writer, a: ACL) -> None:
    w.int(a.perms).ustring(a.scheme).ustring(a.id)


def _r_acl(r: Reader) -> ACL:
    return ACL(r.int(), r.string(), r.string())


def _encode_body(w: Writer, body: object) -> None:
    if isinstance(body, CreateTxn):
        w.int(_CREATE).ustring(body.path).buffer(body.data).vector(body.acl, _w_acl)
        w.long(body.owner).int(body.parent_c)
    elif isinstance(body, DeleteTxn):
        w.int(_DELETE).ustring(body.path)
    elif isinstance(body, SetDataTxn):
        w.int(_SET_DATA).ustring(body.path).buffer(body.data).int(body.version)
    elif isinstance(body, SetACLTxn):
        w.int(_SET_ACL).ustring(body.path).vector(body.acl, _w_acl).int(body.aversion)
    elif isinstance(body, CheckTxn):
        w.int(_CHECK).ustring(body.path)
    elif isinstance(body, ErrorTxn):
        w.int(_ERROR).int(body.err)
    elif isinstance(body, CreateSessionTxn):
        w.int(_CREATE_SESSION).int(body.timeout).buffer(body.password)
    elif isinstance(body, CloseSessionTxn):
        w.int(_CLOSE_SESSION)
    elif isinstance(body, MultiTxn):
        w.int(_MULTI).int(len(body.ops))
        for op, sub in body.ops:
            w.int(op)
            _encode_body(w, sub)
    else:
        raise TypeError(f"cannot encode {body!r}")


def _decode_body(r: Reader) -> TxnBody:
    kind = r.int()
    if kind == _CREATE:
        return CreateTxn(r.string(), r.buffer(), tuple(r.vector(_r_acl) or ()), r.long(),
                         r.int())
    if kind == _DELETE:
        return DeleteTxn(r.string())
    if kind == _SET_DATA:
        return SetDataTxn(r.string(), r.buffer(), r.int())
    if kind == _SET_ACL:
        return SetACLTxn(r.string(), tuple(r.vector(_r_acl) or ()), r.int())
    if kind == _CHECK:
        return CheckTxn(r.string())
    if kind == _ERROR:
        return ErrorTxn(r.int())
    if kind == _CREATE_SESSION:
        return CreateSessionTxn(r.int(), r.buffer() or b"")
    if kind == _CLOSE_SESSION:
        return CloseSessionTxn()
    if kind == _MULTI:
        n = r.int()
        if n < 0 or n > r.remaining():
            raise ProtocolError(f"bad multi length {n}")
        ops = []
        for _ in range(n):
            op = r.int()
            ops.append((op, _decode_body(r)))
        return MultiTxn(tuple(ops))
    raise ProtocolError(f"unknown txn kind {kind}")


def encode_txn(txn: Txn) -> bytes:
    """The binary form (cached on the txn: a leader encodes once for its log and all
    learners; a learner logs the bytes it received)."""
    raw = txn.raw
    if raw is not None:
        return raw
    w = Writer()
    w.long(txn.zxid).long(txn.session_id).int(txn.cxid).long(txn.time).int(txn.op)
    _encode_body(w, txn.body)
    raw = txn.raw = w.getvalue()
    return raw


def decode_txn(data: bytes | memoryview) -> Txn:
    r = Reader(data, max_len=1 << 30)
    zxid, sid, cxid, time, op = r.long(), r.long(), r.int(), r.long(), r.int()
    body = _decode_body(r)
    if r.remaining():
        raise ProtocolError(f"{r.remaining()} trailing bytes after txn {zxid:#x}")
    return Txn(zxid, sid, cxid, time, op, body, raw=bytes(data))
