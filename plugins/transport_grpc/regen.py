"""Regenerate (or check) the checked-in Python stubs from the .proto.

    python -m plugins.transport_grpc.regen          # rewrite plugins/transport_grpc/v1/
    python -m plugins.transport_grpc.regen --check  # exit 1 if the stubs are stale

Needs ``grpcio-tools`` (a test dependency). protoc writes absolute imports named after
the proto's path (``zkernel.v1``); the stubs live in ``plugins.transport_grpc.v1``, so
that one import is rewritten.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO_ROOT = HERE / "proto"
PROTO = "zkernel/v1/zkernel.proto"
OUT = HERE / "v1"
FILES = ("zkernel_pb2.py", "zkernel_pb2.pyi", "zkernel_pb2_grpc.py")
_IMPORT = "from zkernel.v1 import zkernel_pb2"
_FIXED = "from plugins.transport_grpc.v1 import zkernel_pb2"


def generate() -> dict[str, str]:
    """The stubs as protoc (grpcio-tools) writes them today, import fixed."""
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as tmp:
        include = Path(protoc.__file__).resolve().parent / "_proto"
        rc = protoc.main([
            "grpc_tools.protoc", f"-I{PROTO_ROOT}", f"-I{include}",
            f"--python_out={tmp}", f"--pyi_out={tmp}", f"--grpc_python_out={tmp}", PROTO])
        if rc != 0:
            raise RuntimeError(f"protoc failed ({rc})")
        gen = Path(tmp) / "zkernel" / "v1"
        return {name: (gen / name).read_text().replace(_IMPORT, _FIXED) for name in FILES}


def main(argv: list[str]) -> int:
    fresh = generate()
    if "--check" in argv:
        stale = [n for n, text in fresh.items()
                 if not (OUT / n).exists() or (OUT / n).read_text() != text]
        if stale:
            print("stale stubs: " + ", ".join(stale)
                  + " (run python -m plugins.transport_grpc.regen)", file=sys.stderr)
            return 1
        return 0
    OUT.mkdir(exist_ok=True)
    for name, text in fresh.items():
        (OUT / name).write_text(text)
    init = OUT / "__init__.py"
    if not init.exists():
        init.write_text('"""Generated stubs of zkernel.v1 (see ../regen.py); do not edit."""\n')
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
