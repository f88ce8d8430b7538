"""The zkernel.v1 servicers: protobuf requests → kernel request records → replies.

Every handler resolves its session (``GrpcTransport.attach``), submits one request
through the session's connection and converts the reply. Failures raise
``CallError`` and leave through ``_abort`` with the status of the error table.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeAlias, TypeVar

import grpc

from kernel.api import (
    ACL,
    AuthRequest,
    CheckVersionRequest,
    CreateRequest,
    DeleteRequest,
    EmptyRequest,
    MultiRequest,
    Node,
    OpCode,
    OpResult,
    PathRequest,
    PathWatchRequest,
    SetACLRequest,
    SetDataRequest,
    Stat,
    WatchTypeRequest,
)
from plugins.transport_grpc.connection import Convert, GrpcConnection, Reply
from plugins.transport_grpc.errors import (
    BAD_ARGUMENTS,
    NO_NODE,
    OK,
    RUNTIME_INCONSISTENCY,
    SYSTEM_ERROR,
    CallError,
    StreamError,
    name_for,
    trailing_metadata,
)
from plugins.transport_grpc.server import AUTH_KEY, GrpcTransport, make_token
from plugins.transport_grpc.v1 import zkernel_pb2 as pb
from plugins.transport_grpc.v1 import zkernel_pb2_grpc as pbg

Ctx: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
R = TypeVar("R")

OPEN_ACL_UNSAFE = [ACL(31, "world", "anyone")]
_TTL_MODES = frozenset({pb.PERSISTENT_WITH_TTL, pb.PERSISTENT_SEQUENTIAL_WITH_TTL})


# -- conversions ---------------------------------------------------------------------


def _stat(s: Stat) -> pb.Stat:
    return pb.Stat(czxid=s[0], mzxid=s[1], ctime=s[2], mtime=s[3], version=s[4],
                   cversion=s[5], aversion=s[6], ephemeral_owner=s[7], data_length=s[8],
                   num_children=s[9], pzxid=s[10])


def _any_stat(v: object) -> pb.Stat:
    if isinstance(v, Node):
        return _stat(v.stat())
    assert isinstance(v, Stat)
    return _stat(v)


def _acls_in(acl: Sequence[pb.ACL]) -> list[ACL]:
    if not acl:
        return list(OPEN_ACL_UNSAFE)
    return [ACL(a.perms, a.id.scheme, a.id.id) for a in acl]


def _acls_out(acl: Sequence[ACL]) -> list[pb.ACL]:
    return [pb.ACL(perms=a.perms, id=pb.Id(scheme=a.scheme, id=a.id)) for a in acl]


def _version(msg: Any) -> int:
    return int(msg.version) if msg.HasField("version") else -1


def _create_record(req: pb.CreateRequest) -> tuple[int, CreateRequest]:
    mode = int(req.mode)
    acl = _acls_in(req.acl)
    if mode == pb.CONTAINER:
        return OpCode.CREATE_CONTAINER, CreateRequest(req.path, req.data, acl, mode)
    if mode in _TTL_MODES:
        return OpCode.CREATE_TTL, CreateRequest(req.path, req.data, acl, mode, req.ttl_ms)
    return OpCode.CREATE2, CreateRequest(req.path, req.data, acl, mode)


def _none(v: object) -> None:
    return None


def _same(v: object) -> object:
    return v


def _path_stat(v: object) -> tuple[str, pb.Stat]:
    assert isinstance(v, tuple)
    return v[0], _any_stat(v[1])


def _data_stat(v: object) -> tuple[bytes, pb.Stat]:
    if isinstance(v, Node):
        return v.data or b"", _stat(v.stat())
    assert isinstance(v, tuple)
    return v[0] or b"", _any_stat(v[1])


def _children_stat(v: object) -> tuple[list[str], pb.Stat]:
    assert isinstance(v, tuple)
    return list(v[0]), _any_stat(v[1])


def _acl_stat(v: object) -> tuple[list[pb.ACL], pb.Stat]:
    assert isinstance(v, tuple)
    return _acls_out(v[0]), _any_stat(v[1])


def _multi_results(v: object) -> list[pb.OpResult] | CallError:
    assert isinstance(v, list)
    codes = [r.err if r.op == OpCode.ERROR else OK for r in v]
    for i, code in enumerate(codes):
        if code not in (OK, RUNTIME_INCONSISTENCY):
            return CallError(code, f"{name_for(code)} (multi operation {i})", i, codes)
    if any(codes):
        return CallError(RUNTIME_INCONSISTENCY, "multi failed", -1, codes)
    out = []
    for r in v:
        assert isinstance(r, OpResult)
        if r.op in (OpCode.CREATE, OpCode.CREATE2):
            if isinstance(r.value, tuple):
                path, stat = _path_stat(r.value)
                out.append(pb.OpResult(create=pb.CreateResponse(path=path, stat=stat)))
            else:
                out.append(pb.OpResult(create=pb.CreateResponse(path=str(r.value))))
        elif r.op == OpCode.DELETE:
            out.append(pb.OpResult(delete=pb.DeleteResponse()))
        elif r.op == OpCode.SET_DATA:
            out.append(pb.OpResult(set=pb.SetResponse(stat=_any_stat(r.value))))
        else:
            out.append(pb.OpResult(check=pb.CheckResponse()))
    return out


def _multi_read_results(v: object) -> list[pb.ReadResult]:
    assert isinstance(v, list)
    out = []
    for r in v:
        assert isinstance(r, OpResult)
        if r.op == OpCode.ERROR:
            out.append(pb.ReadResult(error=r.err))
        elif r.op == OpCode.GET_DATA:
            data, stat = _data_stat(r.value)
            out.append(pb.ReadResult(get=pb.GetResponse(data=data, stat=stat)))
        else:
            assert isinstance(r.value, list)
            out.append(pb.ReadResult(children=pb.ChildrenResponse(children=r.value)))
    return out


def _who_am_i(v: object) -> list[pb.Id]:
    assert isinstance(v, list)
    return [pb.Id(scheme=s, id=i) for s, i in v]


# -- plumbing ------------------------------------------------------------------------


async def _abort(context: Ctx, e: CallError | StreamError) -> None:
    if isinstance(e, StreamError):
        await context.abort(e.status, e.message)
        return
    await context.abort(e.status, e.message,
                        trailing_metadata=trailing_metadata(e.code, e.message, e.op_index,
                                                            e.op_codes))


def rpc(fn: Callable[[Any, Any, Ctx], Awaitable[R]]) -> Callable[[Any, Any, Ctx],
                                                                  Awaitable[R]]:
    """Turn a CallError/StreamError raised by a handler into the call's status."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: Ctx) -> R:
        try:
            return await fn(self, request, context)
        except (CallError, StreamError) as e:
            await _abort(context, e)
            raise AssertionError("unreachable") from None

    return wrapper


async def _call(conn: GrpcConnection, op: int, request: object, convert: Convert,
                path: str = "") -> Reply:
    r = await conn.call(op, request, convert)
    if r.err:
        raise CallError(r.err, f"{name_for(r.err)} {path}".rstrip())
    return r


class _Service:
    def __init__(self, transport: GrpcTransport) -> None:
        self.t = transport

    def header(self, conn: GrpcConnection, zxid: int) -> pb.ResponseHeader:
        sess = conn.session
        return pb.ResponseHeader(zxid=zxid, session_id=sess.id if sess is not None else 0)


# -- Sessions ------------------------------------------------------------------------


class SessionsService(_Service, pbg.SessionsServicer):  # type: ignore[misc]
    """zkernel.v1.Sessions: sessions as leases."""

    @rpc
    async def Create(self, request: pb.CreateSessionRequest,  # noqa: N802
                     context: Ctx) -> pb.CreateSessionResponse:
        t = self.t
        conn = t.new_connection(context)
        t.kernel.connect(conn, 0, request.timeout_ms, 0, b"")
        if not await conn.handshake() or conn.session is None:
            raise CallError(SYSTEM_ERROR, "the session could not be created")
        t.adopt(conn)
        sess = conn.session
        zxid = t.kernel.last_zxid
        for key, value in context.invocation_metadata() or ():
            if key != AUTH_KEY:
                continue
            scheme, _, creds = str(value).partition(" ")
            r = await conn.call(OpCode.AUTH, AuthRequest(0, scheme, creds.encode()), _none)
            if r.err:
                # The kernel dropped the connection; end the session it was made for.
                t.kernel.expire_session(sess.id)
                raise CallError(r.err, f"{name_for(r.err)}: scheme {scheme!r}")
            zxid = r.zxid
        return pb.CreateSessionResponse(
            header=self.header(conn, zxid), session_id=sess.id, password=sess.password,
            timeout_ms=sess.timeout, token=make_token(sess.id, sess.password))

    async def KeepAlive(self, request_iterator: Any, context: Ctx) -> None:  # noqa: N802
        try:
            while True:
                req = await context.read()
                if req is grpc.aio.EOF:
                    return
                conn = await self.t.attach(context)
                r = await _call(conn, OpCode.PING, EmptyRequest(), _none)
                sess = conn.session
                await context.write(pb.KeepAliveResponse(
                    header=self.header(conn, r.zxid),
                    timeout_ms=sess.timeout if sess is not None else 0))
        except CallError as e:
            await _abort(context, e)

    @rpc
    async def End(self, request: pb.EndSessionRequest,  # noqa: N802
                    context: Ctx) -> pb.EndSessionResponse:
        conn = await self.t.attach(context)
        r = await _call(conn, OpCode.CLOSE_SESSION, EmptyRequest(), _none)
        return pb.EndSessionResponse(header=self.header(conn, r.zxid))

    @rpc
    async def Authenticate(self, request: pb.AuthenticateRequest,  # noqa: N802
                           context: Ctx) -> pb.AuthenticateResponse:
        conn = await self.t.attach(context)
        r = await _call(conn, OpCode.AUTH,
                        AuthRequest(0, request.scheme, request.credentials), _none)
        return pb.AuthenticateResponse(header=self.header(conn, r.zxid))

    @rpc
    async def WhoAmI(self, request: pb.WhoAmIRequest,  # noqa: N802
                     context: Ctx) -> pb.WhoAmIResponse:
        conn = await self.t.attach(context)
        r = await _call(conn, OpCode.WHO_AM_I, EmptyRequest(), _who_am_i)
        return pb.WhoAmIResponse(header=self.header(conn, r.zxid), ids=r.value)


# -- Nodes ---------------------------------------------------------------------------


class NodesService(_Service, pbg.NodesServicer):  # type: ignore[misc]
    """zkernel.v1.Nodes: the znode tree."""

    @rpc
    async def Create(self, request: pb.CreateRequest,  # noqa: N802
                     context: Ctx) -> pb.CreateResponse:
        conn = await self.t.attach(context)
        op, rec = _create_record(request)
        r = await _call(conn, op, rec, _path_stat, request.path)
        path, stat = r.value
        return pb.CreateResponse(header=self.header(conn, r.zxid), path=path, stat=stat)

    @rpc
    async def Get(self, request: pb.GetRequest, context: Ctx) -> pb.GetResponse:  # noqa: N802
        conn = await self.t.attach(context)
        r = await _call(conn, OpCode.GET_DATA, PathWatchRequest(request.path, request.watch),
                        _data_stat, request.path)
        data, stat = r.value
        return pb.GetResponse(header=self.header(conn, r.zxid), data=data, stat=stat)

    @rpc
    async def Set(self, request: pb.SetRequest, context: Ctx) -> pb.SetResponse:  # noqa: N802
        conn = await self.t.attach(context)
        r = await _call(conn, OpCode.SET_DATA,
                        SetDataRequest(request.path, request.data, _version(request)),
                        _any_stat, request.path)
        return pb.SetResponse(header=self.header(conn, r.zxid), stat=r.value)

    @rpc
    async def Delete(self, request: pb.DeleteRequest,  # noqa: N802
                     context: Ctx) -> pb.DeleteResponse:
        conn = await self.t.attach(context)
        r = await _call(conn, OpCode.DELETE, DeleteRequest(request.path, _version(request)),
                        _none, request.path)
        return pb.DeleteResponse(header=self.header(conn, r.zxid))

    @rpc
    async def Exists(self, request: pb.ExistsRequest,  # noqa: N802
                     context: Ctx) -> pb.ExistsResponse:
        conn = await self.t.attach(context)
        r = await conn.call(OpCode.EXISTS, PathWatchRequest(request.path, request.watch),
                            _any_stat)
        if r.err == NO_NODE:
            return pb.ExistsResponse(header=self.header(conn, r.zxid), exists=False)
        if r.err:
            raise CallError(r.err, f"{name_for(r.err)} {request.path}")
        return pb.ExistsResponse(header=self.header(conn, r.zxid), exists=True, stat=r.value)

    @rpc
    async def Children(self, request: pb.ChildrenRequest,  # noqa: N802
                       context: Ctx) -> pb.ChildrenResponse:
        conn = await self.t.attach(context)
        r = await _call(conn, OpCode.GET_CHILDREN2,
                        PathWatchRequest(request.path, request.watch), _children_stat,
                        request.path)
        children, stat = r.value
        return pb.ChildrenResponse(header=self.header(conn, r.zxid), children=children,
                                   stat=stat)

    @rpc
    async def GetACL(self, request: pb.GetACLRequest,  # noqa: N802
                     context: Ctx) -> pb.GetACLResponse:
        conn = await self.t.attach(context)
        r = await _call(conn, OpCode.GET_ACL, PathRequest(request.path), _acl_stat,
                        request.path)
        acl, stat = r.value
        return pb.GetACLResponse(header=self.header(conn, r.zxid), acl=acl, stat=stat)

    @rpc
    async def SetACL(self, request: pb.SetACLRequest,  # noqa: N802
                     context: Ctx) -> pb.SetACLResponse:
        conn = await self.t.attach(context)
        rec = SetACLRequest(request.path, [ACL(a.perms, a.id.scheme, a.id.id)
                                           for a in request.acl], _version(request))
        r = await _call(conn, OpCode.SET_ACL, rec, _any_stat, request.path)
        return pb.SetACLResponse(header=self.header(conn, r.zxid), stat=r.value)

    @rpc
    async def Sync(self, request: pb.SyncRequest, context: Ctx) -> pb.SyncResponse:  # noqa: N802
        conn = await self.t.attach(context)
        r = await _call(conn, OpCode.SYNC, PathRequest(request.path), _same, request.path)
        return pb.SyncResponse(header=self.header(conn, r.zxid), path=str(r.value))

    @rpc
    async def Multi(self, request: pb.MultiRequest,  # noqa: N802
                    context: Ctx) -> pb.MultiResponse:
        conn = await self.t.attach(context)
        ops: list[tuple[int, object]] = []
        for i, op in enumerate(request.ops):
            kind = op.WhichOneof("op")
            if kind == "create":
                ops.append(_create_record(op.create))
            elif kind == "delete":
                ops.append((OpCode.DELETE, DeleteRequest(op.delete.path,
                                                         _version(op.delete))))
            elif kind == "set":
                ops.append((OpCode.SET_DATA, SetDataRequest(op.set.path, op.set.data,
                                                            _version(op.set))))
            elif kind == "check":
                ops.append((OpCode.CHECK, CheckVersionRequest(op.check.path,
                                                              op.check.version)))
            else:
                raise CallError(BAD_ARGUMENTS, f"multi operation {i} is empty")
        r = await _call(conn, OpCode.MULTI, MultiRequest(ops), _multi_results)
        if isinstance(r.value, CallError):
            raise r.value
        return pb.MultiResponse(header=self.header(conn, r.zxid), results=r.value)

    @rpc
    async def MultiRead(self, request: pb.MultiReadRequest,  # noqa: N802
                        context: Ctx) -> pb.MultiReadResponse:
        conn = await self.t.attach(context)
        ops: list[tuple[int, object]] = []
        for i, op in enumerate(request.ops):
            kind = op.WhichOneof("op")
            if kind == "get":
                ops.append((OpCode.GET_DATA, PathWatchRequest(op.get, False)))
            elif kind == "children":
                ops.append((OpCode.GET_CHILDREN, PathWatchRequest(op.children, False)))
            else:
                raise CallError(BAD_ARGUMENTS, f"multiRead operation {i} is empty")
        r = await _call(conn, OpCode.MULTI_READ, MultiRequest(ops), _multi_read_results)
        return pb.MultiReadResponse(header=self.header(conn, r.zxid), results=r.value)

    @rpc
    async def GetEphemerals(self, request: pb.GetEphemeralsRequest,  # noqa: N802
                            context: Ctx) -> pb.GetEphemeralsResponse:
        conn = await self.t.attach(context)
        r = await _call(conn, OpCode.GET_EPHEMERALS, PathRequest(request.prefix), _same)
        assert isinstance(r.value, list)
        return pb.GetEphemeralsResponse(header=self.header(conn, r.zxid), paths=r.value)

    @rpc
    async def CountDescendants(self, request: pb.CountDescendantsRequest,  # noqa: N802
                               context: Ctx) -> pb.CountDescendantsResponse:
        conn = await self.t.attach(context)
        r = await _call(conn, OpCode.GET_ALL_CHILDREN_NUMBER, PathRequest(request.path),
                        _same, request.path)
        assert isinstance(r.value, int)
        return pb.CountDescendantsResponse(header=self.header(conn, r.zxid), count=r.value)


# -- Watches -------------------------------------------------------------------------


class WatchesService(_Service, pbg.WatchesServicer):  # type: ignore[misc]
    """zkernel.v1.Watches: the session's event stream and persistent watches."""

    async def Events(self, request: pb.EventsRequest, context: Ctx) -> None:  # noqa: N802
        try:
            await self._events(request, context)
        except (CallError, StreamError) as e:
            await _abort(context, e)

    async def _events(self, request: pb.EventsRequest, context: Ctx) -> None:
        conn = await self.t.attach(context)
        seq = conn.start(request.after_zxid)
        if seq is None:
            raise StreamError(grpc.StatusCode.OUT_OF_RANGE,
                              f"events after zxid {request.after_zxid:#x} were dropped "
                              f"(a session keeps its last {conn.max_events}); re-read the "
                              "state and resume after the zxid of that read")
        await context.send_initial_metadata(())
        last_zxid = request.after_zxid
        while True:
            if seq < conn.first_seq:
                raise StreamError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                  f"this stream fell more than {conn.max_events} events "
                                  f"behind; events after zxid {last_zxid:#x} were dropped; "
                                  "re-read the state and resume after the zxid of that read")
            batch = conn.take(seq)
            if not batch:
                if conn.closed:
                    code = conn.lost_code()
                    raise CallError(code, f"{name_for(code)}: the session's event stream "
                                          "ended")
                await conn.changed()
                continue
            seq = batch[-1].seq + 1
            last_zxid = batch[0].zxid
            await context.write(pb.EventsResponse(
                header=self.header(conn, self.t.kernel.last_zxid),
                events=[pb.WatchEvent(type=e.type, path=e.path, zxid=e.zxid)  # type: ignore[arg-type]
                        for e in batch],
                zxid=last_zxid))
            if seq > conn.delivered:
                conn.delivered = seq

    @rpc
    async def Add(self, request: pb.AddWatchRequest,  # noqa: N802
                  context: Ctx) -> pb.AddWatchResponse:
        conn = await self.t.attach(context)
        r = await _call(conn, OpCode.ADD_WATCH,
                        WatchTypeRequest(request.path, int(request.mode)), _none, request.path)
        return pb.AddWatchResponse(header=self.header(conn, r.zxid))

    @rpc
    async def Remove(self, request: pb.RemoveWatchRequest,  # noqa: N802
                     context: Ctx) -> pb.RemoveWatchResponse:
        conn = await self.t.attach(context)
        _check_watcher_type(request.type)
        r = await _call(conn, OpCode.REMOVE_WATCHES,
                        WatchTypeRequest(request.path, int(request.type)), _none, request.path)
        return pb.RemoveWatchResponse(header=self.header(conn, r.zxid))

    @rpc
    async def Check(self, request: pb.CheckWatchRequest,  # noqa: N802
                    context: Ctx) -> pb.CheckWatchResponse:
        conn = await self.t.attach(context)
        _check_watcher_type(request.type)
        r = await _call(conn, OpCode.CHECK_WATCHES,
                        WatchTypeRequest(request.path, int(request.type)), _none, request.path)
        return pb.CheckWatchResponse(header=self.header(conn, r.zxid))


def _check_watcher_type(t: int) -> None:
    if not 1 <= t <= 5:
        raise CallError(BAD_ARGUMENTS, f"invalid watcher type {t}")
