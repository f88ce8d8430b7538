from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Perm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PERM_NONE: _ClassVar[Perm]
    PERM_READ: _ClassVar[Perm]
    PERM_WRITE: _ClassVar[Perm]
    PERM_CREATE: _ClassVar[Perm]
    PERM_DELETE: _ClassVar[Perm]
    PERM_ADMIN: _ClassVar[Perm]
    PERM_ALL: _ClassVar[Perm]

class CreateMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PERSISTENT: _ClassVar[CreateMode]
    EPHEMERAL: _ClassVar[CreateMode]
    PERSISTENT_SEQUENTIAL: _ClassVar[CreateMode]
    EPHEMERAL_SEQUENTIAL: _ClassVar[CreateMode]
    CONTAINER: _ClassVar[CreateMode]
    PERSISTENT_WITH_TTL: _ClassVar[CreateMode]
    PERSISTENT_SEQUENTIAL_WITH_TTL: _ClassVar[CreateMode]

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    NODE_CREATED: _ClassVar[EventType]
    NODE_DELETED: _ClassVar[EventType]
    NODE_DATA_CHANGED: _ClassVar[EventType]
    NODE_CHILDREN_CHANGED: _ClassVar[EventType]

class AddWatchMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ADD_WATCH_MODE_PERSISTENT: _ClassVar[AddWatchMode]
    ADD_WATCH_MODE_PERSISTENT_RECURSIVE: _ClassVar[AddWatchMode]

class WatcherType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WATCHER_TYPE_UNSPECIFIED: _ClassVar[WatcherType]
    WATCHER_TYPE_CHILDREN: _ClassVar[WatcherType]
    WATCHER_TYPE_DATA: _ClassVar[WatcherType]
    WATCHER_TYPE_ANY: _ClassVar[WatcherType]
    WATCHER_TYPE_PERSISTENT: _ClassVar[WatcherType]
    WATCHER_TYPE_PERSISTENT_RECURSIVE: _ClassVar[WatcherType]
PERM_NONE: Perm
PERM_READ: Perm
PERM_WRITE: Perm
PERM_CREATE: Perm
PERM_DELETE: Perm
PERM_ADMIN: Perm
PERM_ALL: Perm
PERSISTENT: CreateMode
EPHEMERAL: CreateMode
PERSISTENT_SEQUENTIAL: CreateMode
EPHEMERAL_SEQUENTIAL: CreateMode
CONTAINER: CreateMode
PERSISTENT_WITH_TTL: CreateMode
PERSISTENT_SEQUENTIAL_WITH_TTL: CreateMode
EVENT_TYPE_UNSPECIFIED: EventType
NODE_CREATED: EventType
NODE_DELETED: EventType
NODE_DATA_CHANGED: EventType
NODE_CHILDREN_CHANGED: EventType
ADD_WATCH_MODE_PERSISTENT: AddWatchMode
ADD_WATCH_MODE_PERSISTENT_RECURSIVE: AddWatchMode
WATCHER_TYPE_UNSPECIFIED: WatcherType
WATCHER_TYPE_CHILDREN: WatcherType
WATCHER_TYPE_DATA: WatcherType
WATCHER_TYPE_ANY: WatcherType
WATCHER_TYPE_PERSISTENT: WatcherType
WATCHER_TYPE_PERSISTENT_RECURSIVE: WatcherType

class ResponseHeader(_message.Message):
    __slots__ = ("zxid", "session_id")
    ZXID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    zxid: int
    session_id: int
    def __init__(self, zxid: _Optional[int] = ..., session_id: _Optional[int] = ...) -> None: ...

class Stat(_message.Message):
    __slots__ = ("czxid", "mzxid", "ctime", "mtime", "version", "cversion", "aversion", "ephemeral_owner", "data_length", "num_children", "pzxid")
    CZXID_FIELD_NUMBER: _ClassVar[int]
    MZXID_FIELD_NUMBER: _ClassVar[int]
    CTIME_FIELD_NUMBER: _ClassVar[int]
    MTIME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CVERSION_FIELD_NUMBER: _ClassVar[int]
    AVERSION_FIELD_NUMBER: _ClassVar[int]
    EPHEMERAL_OWNER_FIELD_NUMBER: _ClassVar[int]
    DATA_LENGTH_FIELD_NUMBER: _ClassVar[int]
    NUM_CHILDREN_FIELD_NUMBER: _ClassVar[int]
    PZXID_FIELD_NUMBER: _ClassVar[int]
    czxid: int
    mzxid: int
    ctime: int
    mtime: int
    version: int
    cversion: int
    aversion: int
    ephemeral_owner: int
    data_length: int
    num_children: int
    pzxid: int
    def __init__(self, czxid: _Optional[int] = ..., mzxid: _Optional[int] = ..., ctime: _Optional[int] = ..., mtime: _Optional[int] = ..., version: _Optional[int] = ..., cversion: _Optional[int] = ..., aversion: _Optional[int] = ..., ephemeral_owner: _Optional[int] = ..., data_length: _Optional[int] = ..., num_children: _Optional[int] = ..., pzxid: _Optional[int] = ...) -> None: ...

class Id(_message.Message):
    __slots__ = ("scheme", "id")
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    scheme: str
    id: str
    def __init__(self, scheme: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class ACL(_message.Message):
    __slots__ = ("perms", "id")
    PERMS_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    perms: int
    id: Id
    def __init__(self, perms: _Optional[int] = ..., id: _Optional[_Union[Id, _Mapping]] = ...) -> None: ...

class ErrorDetail(_message.Message):
    __slots__ = ("code", "name", "message", "op_index", "op_codes")
    CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    OP_INDEX_FIELD_NUMBER: _ClassVar[int]
    OP_CODES_FIELD_NUMBER: _ClassVar[int]
    code: int
    name: str
    message: str
    op_index: int
    op_codes: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, code: _Optional[int] = ..., name: _Optional[str] = ..., message: _Optional[str] = ..., op_index: _Optional[int] = ..., op_codes: _Optional[_Iterable[int]] = ...) -> None: ...

class CreateSessionRequest(_message.Message):
    __slots__ = ("timeout_ms",)
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    timeout_ms: int
    def __init__(self, timeout_ms: _Optional[int] = ...) -> None: ...

class CreateSessionResponse(_message.Message):
    __slots__ = ("header", "session_id", "password", "timeout_ms", "token")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    session_id: int
    password: bytes
    timeout_ms: int
    token: str
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., session_id: _Optional[int] = ..., password: _Optional[bytes] = ..., timeout_ms: _Optional[int] = ..., token: _Optional[str] = ...) -> None: ...

class KeepAliveRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class KeepAliveResponse(_message.Message):
    __slots__ = ("header", "timeout_ms")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    timeout_ms: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class EndSessionRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EndSessionResponse(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ...) -> None: ...

class AuthenticateRequest(_message.Message):
    __slots__ = ("scheme", "credentials")
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    scheme: str
    credentials: bytes
    def __init__(self, scheme: _Optional[str] = ..., credentials: _Optional[bytes] = ...) -> None: ...

class AuthenticateResponse(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ...) -> None: ...

class WhoAmIRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WhoAmIResponse(_message.Message):
    __slots__ = ("header", "ids")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    ids: _containers.RepeatedCompositeFieldContainer[Id]
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., ids: _Optional[_Iterable[_Union[Id, _Mapping]]] = ...) -> None: ...

class CreateRequest(_message.Message):
    __slots__ = ("path", "data", "acl", "mode", "ttl_ms")
    PATH_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    ACL_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    path: str
    data: bytes
    acl: _containers.RepeatedCompositeFieldContainer[ACL]
    mode: CreateMode
    ttl_ms: int
    def __init__(self, path: _Optional[str] = ..., data: _Optional[bytes] = ..., acl: _Optional[_Iterable[_Union[ACL, _Mapping]]] = ..., mode: _Optional[_Union[CreateMode, str]] = ..., ttl_ms: _Optional[int] = ...) -> None: ...

class CreateResponse(_message.Message):
    __slots__ = ("header", "path", "stat")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    STAT_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    path: str
    stat: Stat
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., path: _Optional[str] = ..., stat: _Optional[_Union[Stat, _Mapping]] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("path", "watch")
    PATH_FIELD_NUMBER: _ClassVar[int]
    WATCH_FIELD_NUMBER: _ClassVar[int]
    path: str
    watch: bool
    def __init__(self, path: _Optional[str] = ..., watch: _Optional[bool] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("header", "data", "stat")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    STAT_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    data: bytes
    stat: Stat
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., data: _Optional[bytes] = ..., stat: _Optional[_Union[Stat, _Mapping]] = ...) -> None: ...

class SetRequest(_message.Message):
    __slots__ = ("path", "data", "version")
    PATH_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    path: str
    data: bytes
    version: int
    def __init__(self, path: _Optional[str] = ..., data: _Optional[bytes] = ..., version: _Optional[int] = ...) -> None: ...

class SetResponse(_message.Message):
    __slots__ = ("header", "stat")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    STAT_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    stat: Stat
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., stat: _Optional[_Union[Stat, _Mapping]] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("path", "version")
    PATH_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    path: str
    version: int
    def __init__(self, path: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ...) -> None: ...

class ExistsRequest(_message.Message):
    __slots__ = ("path", "watch")
    PATH_FIELD_NUMBER: _ClassVar[int]
    WATCH_FIELD_NUMBER: _ClassVar[int]
    path: str
    watch: bool
    def __init__(self, path: _Optional[str] = ..., watch: _Optional[bool] = ...) -> None: ...

class ExistsResponse(_message.Message):
    __slots__ = ("header", "exists", "stat")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    STAT_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    exists: bool
    stat: Stat
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., exists: _Optional[bool] = ..., stat: _Optional[_Union[Stat, _Mapping]] = ...) -> None: ...

class ChildrenRequest(_message.Message):
    __slots__ = ("path", "watch")
    PATH_FIELD_NUMBER: _ClassVar[int]
    WATCH_FIELD_NUMBER: _ClassVar[int]
    path: str
    watch: bool
    def __init__(self, path: _Optional[str] = ..., watch: _Optional[bool] = ...) -> None: ...

class ChildrenResponse(_message.Message):
    __slots__ = ("header", "children", "stat")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    STAT_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    children: _containers.RepeatedScalarFieldContainer[str]
    stat: Stat
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., children: _Optional[_Iterable[str]] = ..., stat: _Optional[_Union[Stat, _Mapping]] = ...) -> None: ...

class GetACLRequest(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class GetACLResponse(_message.Message):
    __slots__ = ("header", "acl", "stat")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ACL_FIELD_NUMBER: _ClassVar[int]
    STAT_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    acl: _containers.RepeatedCompositeFieldContainer[ACL]
    stat: Stat
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., acl: _Optional[_Iterable[_Union[ACL, _Mapping]]] = ..., stat: _Optional[_Union[Stat, _Mapping]] = ...) -> None: ...

class SetACLRequest(_message.Message):
    __slots__ = ("path", "acl", "version")
    PATH_FIELD_NUMBER: _ClassVar[int]
    ACL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    path: str
    acl: _containers.RepeatedCompositeFieldContainer[ACL]
    version: int
    def __init__(self, path: _Optional[str] = ..., acl: _Optional[_Iterable[_Union[ACL, _Mapping]]] = ..., version: _Optional[int] = ...) -> None: ...

class SetACLResponse(_message.Message):
    __slots__ = ("header", "stat")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    STAT_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    stat: Stat
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., stat: _Optional[_Union[Stat, _Mapping]] = ...) -> None: ...

class SyncRequest(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class SyncResponse(_message.Message):
    __slots__ = ("header", "path")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    path: str
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., path: _Optional[str] = ...) -> None: ...

class Op(_message.Message):
    __slots__ = ("create", "delete", "set", "check")
    CREATE_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    SET_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    create: CreateRequest
    delete: DeleteRequest
    set: SetRequest
    check: CheckRequest
    def __init__(self, create: _Optional[_Union[CreateRequest, _Mapping]] = ..., delete: _Optional[_Union[DeleteRequest, _Mapping]] = ..., set: _Optional[_Union[SetRequest, _Mapping]] = ..., check: _Optional[_Union[CheckRequest, _Mapping]] = ...) -> None: ...

class CheckRequest(_message.Message):
    __slots__ = ("path", "version")
    PATH_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    path: str
    version: int
    def __init__(self, path: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class MultiRequest(_message.Message):
    __slots__ = ("ops",)
    OPS_FIELD_NUMBER: _ClassVar[int]
    ops: _containers.RepeatedCompositeFieldContainer[Op]
    def __init__(self, ops: _Optional[_Iterable[_Union[Op, _Mapping]]] = ...) -> None: ...

class OpResult(_message.Message):
    __slots__ = ("create", "delete", "set", "check")
    CREATE_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    SET_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    create: CreateResponse
    delete: DeleteResponse
    set: SetResponse
    check: CheckResponse
    def __init__(self, create: _Optional[_Union[CreateResponse, _Mapping]] = ..., delete: _Optional[_Union[DeleteResponse, _Mapping]] = ..., set: _Optional[_Union[SetResponse, _Mapping]] = ..., check: _Optional[_Union[CheckResponse, _Mapping]] = ...) -> None: ...

class CheckResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MultiResponse(_message.Message):
    __slots__ = ("header", "results")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    results: _containers.RepeatedCompositeFieldContainer[OpResult]
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., results: _Optional[_Iterable[_Union[OpResult, _Mapping]]] = ...) -> None: ...

class ReadOp(_message.Message):
    __slots__ = ("get", "children")
    GET_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    get: str
    children: str
    def __init__(self, get: _Optional[str] = ..., children: _Optional[str] = ...) -> None: ...

class MultiReadRequest(_message.Message):
    __slots__ = ("ops",)
    OPS_FIELD_NUMBER: _ClassVar[int]
    ops: _containers.RepeatedCompositeFieldContainer[ReadOp]
    def __init__(self, ops: _Optional[_Iterable[_Union[ReadOp, _Mapping]]] = ...) -> None: ...

class ReadResult(_message.Message):
    __slots__ = ("error", "get", "children")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    GET_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    error: int
    get: GetResponse
    children: ChildrenResponse
    def __init__(self, error: _Optional[int] = ..., get: _Optional[_Union[GetResponse, _Mapping]] = ..., children: _Optional[_Union[ChildrenResponse, _Mapping]] = ...) -> None: ...

class MultiReadResponse(_message.Message):
    __slots__ = ("header", "results")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    results: _containers.RepeatedCompositeFieldContainer[ReadResult]
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., results: _Optional[_Iterable[_Union[ReadResult, _Mapping]]] = ...) -> None: ...

class GetEphemeralsRequest(_message.Message):
    __slots__ = ("prefix",)
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    def __init__(self, prefix: _Optional[str] = ...) -> None: ...

class GetEphemeralsResponse(_message.Message):
    __slots__ = ("header", "paths")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    PATHS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    paths: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., paths: _Optional[_Iterable[str]] = ...) -> None: ...

class CountDescendantsRequest(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class CountDescendantsResponse(_message.Message):
    __slots__ = ("header", "count")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    count: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., count: _Optional[int] = ...) -> None: ...

class WatchEvent(_message.Message):
    __slots__ = ("type", "path", "zxid")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    ZXID_FIELD_NUMBER: _ClassVar[int]
    type: EventType
    path: str
    zxid: int
    def __init__(self, type: _Optional[_Union[EventType, str]] = ..., path: _Optional[str] = ..., zxid: _Optional[int] = ...) -> None: ...

class EventsRequest(_message.Message):
    __slots__ = ("after_zxid",)
    AFTER_ZXID_FIELD_NUMBER: _ClassVar[int]
    after_zxid: int
    def __init__(self, after_zxid: _Optional[int] = ...) -> None: ...

class EventsResponse(_message.Message):
    __slots__ = ("header", "events", "zxid")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    ZXID_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    events: _containers.RepeatedCompositeFieldContainer[WatchEvent]
    zxid: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., events: _Optional[_Iterable[_Union[WatchEvent, _Mapping]]] = ..., zxid: _Optional[int] = ...) -> None: ...

class AddWatchRequest(_message.Message):
    __slots__ = ("path", "mode")
    PATH_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    path: str
    mode: AddWatchMode
    def __init__(self, path: _Optional[str] = ..., mode: _Optional[_Union[AddWatchMode, str]] = ...) -> None: ...

class AddWatchResponse(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ...) -> None: ...

class RemoveWatchRequest(_message.Message):
    __slots__ = ("path", "type")
    PATH_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    path: str
    type: WatcherType
    def __init__(self, path: _Optional[str] = ..., type: _Optional[_Union[WatcherType, str]] = ...) -> None: ...

class RemoveWatchResponse(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ...) -> None: ...

class CheckWatchRequest(_message.Message):
    __slots__ = ("path", "type")
    PATH_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    path: str
    type: WatcherType
    def __init__(self, path: _Optional[str] = ..., type: _Optional[_Union[WatcherType, str]] = ...) -> None: ...

class CheckWatchResponse(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ...) -> None: ...
