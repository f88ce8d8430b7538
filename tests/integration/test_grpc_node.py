"""A second language from the same .proto: the Node.js client in tests/clients/node
(@grpc/grpc-js + @grpc/proto-loader) creates an ephemeral, watches it from another
session and sees it vanish when its session's lease runs out.

Skipped only if ``node`` is not installed. The npm packages are installed by .ci/run
(``npm ci --prefix tests/clients/node``); if they are missing, the test installs them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.integration.test_grpc_support import GrpcServer, gserver, only_zkernel
from tests.support.servers import REPO

pytestmark = only_zkernel
__all__ = ["gserver"]  # fixtures

NODE_DIR = REPO / "tests" / "clients" / "node"
PROTO_ROOT = REPO / "plugins" / "transport_grpc" / "proto"


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir():
        npm = shutil.which("npm")
        assert npm is not None, "node is installed but npm is not"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True,
                       capture_output=True, timeout=300)
    return node


def test_node_client_sees_its_ephemeral_vanish(gserver: GrpcServer) -> None:
    node = _node()
    r = subprocess.run([node, "client.js", gserver.grpc_target, str(PROTO_ROOT),
                        f"/node-{os.getpid()}"],
                       cwd=NODE_DIR, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["data"] == "from node"
    assert out["event"]["type"] == "NODE_DELETED"
    assert int(out["event"]["zxid"]) > 0
    assert out["exists_after"] is False
    assert out["not_found"] == {"code": 5, "zk": "-101"}  # NOT_FOUND
    assert out["expired"] == {"code": 16, "zk": "-112"}  # UNAUTHENTICATED, SESSIONEXPIRED
