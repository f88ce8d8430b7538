"""ZooKeeper error codes ↔ gRPC status codes (the table in docs/grpc.md).

A failed call ends with the status below and the ZooKeeper code in the trailing
metadata: ``zk-error-code`` (decimal text) and ``zk-error-bin`` (a serialized
``zkernel.v1.ErrorDetail``).
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from plugins.transport_grpc.v1 import zkernel_pb2 as pb

#: Transport-level codes the kernel never produces itself.
CONNECTION_LOSS = -4
OK = 0
SYSTEM_ERROR = -1
RUNTIME_INCONSISTENCY = -2
BAD_ARGUMENTS = -8
NO_NODE = -101
SESSION_EXPIRED = -112
AUTH_FAILED = -115

#: code → (name, gRPC status). Names are ZooKeeper's KeeperException.Code names.
ERRORS: dict[int, tuple[str, grpc.StatusCode]] = {
    -1: ("SYSTEMERROR", grpc.StatusCode.INTERNAL),
    -2: ("RUNTIMEINCONSISTENCY", grpc.StatusCode.INTERNAL),
    -3: ("DATAINCONSISTENCY", grpc.StatusCode.DATA_LOSS),
    -4: ("CONNECTIONLOSS", grpc.StatusCode.UNAVAILABLE),
    -5: ("MARSHALLINGERROR", grpc.StatusCode.INVALID_ARGUMENT),
    -6: ("UNIMPLEMENTED", grpc.StatusCode.UNIMPLEMENTED),
    -7: ("OPERATIONTIMEOUT", grpc.StatusCode.DEADLINE_EXCEEDED),
    -8: ("BADARGUMENTS", grpc.StatusCode.INVALID_ARGUMENT),
    -12: ("UNKNOWNSESSION", grpc.StatusCode.UNAUTHENTICATED),
    -13: ("NEWCONFIGNOQUORUM", grpc.StatusCode.UNAVAILABLE),
    -14: ("RECONFIGINPROGRESS", grpc.StatusCode.UNAVAILABLE),
    -100: ("APIERROR", grpc.StatusCode.INTERNAL),
    -101: ("NONODE", grpc.StatusCode.NOT_FOUND),
    -102: ("NOAUTH", grpc.StatusCode.PERMISSION_DENIED),
    -103: ("BADVERSION", grpc.StatusCode.ABORTED),
    -108: ("NOCHILDRENFOREPHEMERALS", grpc.StatusCode.FAILED_PRECONDITION),
    -110: ("NODEEXISTS", grpc.StatusCode.ALREADY_EXISTS),
    -111: ("NOTEMPTY", grpc.StatusCode.FAILED_PRECONDITION),
    -112: ("SESSIONEXPIRED", grpc.StatusCode.UNAUTHENTICATED),
    -113: ("INVALIDCALLBACK", grpc.StatusCode.INVALID_ARGUMENT),
    -114: ("INVALIDACL", grpc.StatusCode.INVALID_ARGUMENT),
    -115: ("AUTHFAILED", grpc.StatusCode.UNAUTHENTICATED),
    -118: ("SESSIONMOVED", grpc.StatusCode.FAILED_PRECONDITION),
    -119: ("NOTREADONLY", grpc.StatusCode.FAILED_PRECONDITION),
    -120: ("EPHEMERALONLOCALSESSION", grpc.StatusCode.FAILED_PRECONDITION),
    -121: ("NOWATCHER", grpc.StatusCode.NOT_FOUND),
    -122: ("REQUESTTIMEOUT", grpc.StatusCode.DEADLINE_EXCEEDED),
    -123: ("RECONFIGDISABLED", grpc.StatusCode.FAILED_PRECONDITION),
    -124: ("SESSIONCLOSEDREQUIRESASLAUTH", grpc.StatusCode.UNAUTHENTICATED),
    -125: ("QUOTAEXCEEDED", grpc.StatusCode.RESOURCE_EXHAUSTED),
    -127: ("THROTTLEDOP", grpc.StatusCode.RESOURCE_EXHAUSTED),
}


def status_for(code: int) -> grpc.StatusCode:
    """The gRPC status of a ZooKeeper error code (UNKNOWN for codes not in the table)."""
    entry = ERRORS.get(code)
    return entry[1] if entry is not None else grpc.StatusCode.UNKNOWN


def name_for(code: int) -> str:
    """ZooKeeper's name of an error code."""
    entry = ERRORS.get(code)
    return entry[0] if entry is not None else f"ERROR{code}"


def trailing_metadata(code: int, message: str = "", op_index: int = -1,
                      op_codes: Sequence[int] = ()) -> tuple[tuple[str, str | bytes], ...]:
    """The ``zk-error-code`` / ``zk-error-bin`` trailers of a failed call."""
    detail = pb.ErrorDetail(code=code, name=name_for(code), message=message,
                            op_index=op_index, op_codes=list(op_codes))
    return (("zk-error-code", str(code)), ("zk-error-bin", detail.SerializeToString()))


class CallError(Exception):
    """A call that fails with ZooKeeper error ``code`` (raised inside the transport)."""

    def __init__(self, code: int, message: str = "", op_index: int = -1,
                 op_codes: Sequence[int] = ()) -> None:
        super().__init__(message or name_for(code))
        self.code = code
        self.message = message or name_for(code)
        self.op_index = op_index
        self.op_codes = list(op_codes)
        self.status = status_for(code)


class StreamError(Exception):
    """A stream that ends with a gRPC status that is not a ZooKeeper error
    (OUT_OF_RANGE for an impossible resume, RESOURCE_EXHAUSTED for a slow stream)."""

    def __init__(self, status: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
