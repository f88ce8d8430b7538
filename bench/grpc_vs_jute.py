"""getData / setData throughput over gRPC against the same over Jute, on one server.

    python bench/grpc_vs_jute.py [--rounds 3] [--duration 5] [--warmup 1]
                                 [--storage lmdb|memory] [--jute-client zkbench|python]

Starts one zkernel (both transports, one tree), pre-creates 1000 znodes of 100 bytes,
then runs, A B A B, for each op (get, set): a Jute load and a gRPC load of the same
shape — 4 sessions, 64 requests in flight each, random keys — for ``--duration``
seconds after ``--warmup``. Prints per-run rates, then medians and the gRPC/Jute ratios
of throughput and of server CPU per operation.

Loads: gRPC is driven by a grpc.aio client in its own process (``--grpc-load``, below).
Jute is driven by zkbench (the C load generator of ../shared/bench, built into /tmp)
or, with ``--jute-client python``, by an asyncio client in this file written the same
way as the gRPC one (same language, same concurrency). Every run is bounded by its
duration; the server is always stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

KEYS = 1000
VALUE = b"v" * 100
CONNS = 4
OUTSTANDING = 64
ROOT = "/gvj"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def key(i: int) -> str:
    return f"{ROOT}/k{i}"


# -- gRPC load (run in a child process) -------------------------------------------------


async def grpc_load(target: str, op: str, duration: float, warmup: float,
                    conns: int, outstanding: int) -> dict[str, Any]:
    import grpc

    from plugins.transport_grpc.v1 import zkernel_pb2 as pb
    from plugins.transport_grpc.v1 import zkernel_pb2_grpc as pbg

    channels = [grpc.aio.insecure_channel(target) for _ in range(conns)]
    sessions = []
    for ch in channels:
        r = await pbg.SessionsStub(ch).Create(pb.CreateSessionRequest(timeout_ms=30000))
        sessions.append((pbg.NodesStub(ch), (("zk-session", r.token),)))
    done = 0
    errors = 0
    measuring = False
    stop = False
    rnd = random.Random(1)

    async def worker(nodes: Any, md: Any) -> None:
        nonlocal done, errors
        while not stop:
            k = key(rnd.randrange(KEYS))
            try:
                if op == "get":
                    await nodes.Get(pb.GetRequest(path=k), metadata=md)
                else:
                    await nodes.Set(pb.SetRequest(path=k, data=VALUE), metadata=md)
            except grpc.RpcError:
                errors += 1
            if measuring:
                done += 1

    tasks = [asyncio.create_task(worker(n, md)) for n, md in sessions
             for _ in range(outstanding)]
    await asyncio.sleep(warmup)
    measuring = True
    t0 = time.perf_counter()
    print("measuring", flush=True)  # the parent samples server CPU from here
    await asyncio.sleep(duration)
    elapsed = time.perf_counter() - t0
    measuring = False
    n = done
    print("stopped", flush=True)
    stop = True
    await asyncio.gather(*tasks)
    for (_nodes, md), ch in zip(sessions, channels, strict=True):
        await pbg.SessionsStub(ch).End(pb.EndSessionRequest(), metadata=md)
        await ch.close()
    return {"ops": n, "seconds": elapsed, "rate": n / elapsed, "errors": errors}


# -- Jute load in Python (same shape as the gRPC one) ------------------------------------


def _frame(xid: int, op: int, body: bytes) -> bytes:
    payload = struct.pack(">ii", xid, op) + body
    return struct.pack(">i", len(payload)) + payload


def _path(p: str) -> bytes:
    b = p.encode()
    return struct.pack(">i", len(b)) + b


async def jute_load(host: str, port: int, op: str, duration: float, warmup: float,
                    conns: int, outstanding: int) -> dict[str, Any]:
    """Pipelined getData/setData over raw Jute, ``outstanding`` in flight per session."""
    done = 0
    measuring = False
    stop = False
    rnd = random.Random(1)

    async def session() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection(host, port)
        connect = struct.pack(">iqiq", 0, 0, 30000, 0) + struct.pack(">i", 16) + b"\0" * 16
        writer.write(struct.pack(">i", len(connect)) + connect)
        n = struct.unpack(">i", await reader.readexactly(4))[0]
        await reader.readexactly(n)
        xid = 0

        def request() -> bytes:
            nonlocal xid
            xid += 1
            k = key(rnd.randrange(KEYS))
            if op == "get":
                return _frame(xid, 4, _path(k) + b"\0")
            return _frame(xid, 5, _path(k) + struct.pack(">i", len(VALUE)) + VALUE
                          + struct.pack(">i", -1))

        writer.write(b"".join(request() for _ in range(outstanding)))
        while not stop:
            n = struct.unpack(">i", await reader.readexactly(4))[0]
            await reader.readexactly(n)
            if measuring:
                done += 1
            writer.write(request())
        writer.close()

    tasks = [asyncio.create_task(session()) for _ in range(conns)]
    await asyncio.sleep(warmup)
    measuring = True
    t0 = time.perf_counter()
    print("measuring", flush=True)
    await asyncio.sleep(duration)
    elapsed = time.perf_counter() - t0
    measuring = False
    n = done
    print("stopped", flush=True)
    stop = True
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"ops": n, "seconds": elapsed, "rate": n / elapsed, "errors": 0}


# -- the driver ------------------------------------------------------------------------


def run_child(args: list[str], server_pid: int, timeout: float) -> dict[str, Any]:
    """Run a load child; measure server CPU between its 'measuring' and 'stopped'."""
    p = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout is not None
    cpu0 = cpu1 = 0.0
    result: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    try:
        for line in p.stdout:
            line = line.strip()
            if line == "measuring":
                cpu0 = cpu_seconds(server_pid)
            elif line == "stopped":
                cpu1 = cpu_seconds(server_pid)
            elif line.startswith("{"):
                result = json.loads(line)
            if time.monotonic() > deadline:
                raise TimeoutError("load child ran too long")
        p.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    result["server_cpu_s"] = cpu1 - cpu0
    result["server_us_per_op"] = 1e6 * (cpu1 - cpu0) / max(1, result.get("ops", 0))
    return result


def run_zkbench(zkbench: str, port: int, op: str, duration: float, warmup: float,
                server_pid: int, timeout: float) -> dict[str, Any]:
    r = subprocess.run([zkbench, "--servers", f"127.0.0.1:{port}", "--op", op,
                        "--connections", str(CONNS), "--outstanding", str(OUTSTANDING),
                        "--duration", str(duration), "--warmup", str(warmup),
                        "--znodes", str(KEYS), "--value-size", str(len(VALUE)),
                        "--server-pid", str(server_pid), "--json", "--quiet"],
                       capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"zkbench failed: {r.stderr}")
    out: dict[str, Any] = json.loads(r.stdout)
    return out


def find(d: Any, *names: str) -> float | None:
    """The first numeric field named one of ``names`` anywhere in zkbench's JSON."""
    if isinstance(d, dict):
        for n in names:
            if isinstance(d.get(n), (int, float)):
                return float(d[n])
        for v in d.values():
            got = find(v, *names)
            if got is not None:
                return got
    return None


def build_zkbench() -> str:
    shared = REPO.parent / "shared" / "bench"
    dest = Path("/tmp/bench")
    if not (dest / "zkbench").exists():
        dest.mkdir(parents=True, exist_ok=True)
        for f in shared.iterdir():
            shutil.copy(f, dest / f.name)
        subprocess.run(["make", "-s", "-C", str(dest)], check=True)
    return str(dest / "zkbench")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--storage", default="lmdb", choices=("lmdb", "memory"))
    ap.add_argument("--jute-client", default="zkbench", choices=("zkbench", "python"))
    ap.add_argument("--ops", default="get,set")
    ap.add_argument("--grpc-load", nargs=2, metavar=("TARGET", "OP"), help=argparse.SUPPRESS)
    ap.add_argument("--jute-load", nargs=2, metavar=("PORT", "OP"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.grpc_load:
        r = asyncio.run(grpc_load(a.grpc_load[0], a.grpc_load[1], a.duration, a.warmup,
                                  CONNS, OUTSTANDING))
        print(json.dumps(r), flush=True)
        return 0
    if a.jute_load:
        r = asyncio.run(jute_load("127.0.0.1", int(a.jute_load[0]), a.jute_load[1],
                                  a.duration, a.warmup, CONNS, OUTSTANDING))
        print(json.dumps(r), flush=True)
        return 0

    zkbench = build_zkbench() if a.jute_client == "zkbench" else ""
    work = Path(tempfile.mkdtemp(prefix="grpc-vs-jute-"))
    jport, gport = free_port(), free_port()
    (work / "zoo.cfg").write_text(
        f"tickTime=2000\ndataDir={work}/data\nclientPort={jport}\n"
        f"clientPortAddress=127.0.0.1\nmaxClientCnxns=0\nkernel.storage={a.storage}\n"
        f"kernel.transports=jute,grpc\ngrpcPort={gport}\n")
    server = subprocess.Popen([sys.executable, "-m", "kernel", "serve", "--config",
                               str(work / "zoo.cfg"), "--log-level", "WARNING"],
                              cwd=REPO, start_new_session=True)
    run_timeout = a.warmup + a.duration + 60
    try:
        from tests.integration.test_grpc_support import GClient, wait_healthy

        wait_healthy(f"127.0.0.1:{gport}")
        setup = GClient(f"127.0.0.1:{gport}")
        setup.start(timeout_ms=30000)
        setup.create(ROOT)
        for i in range(KEYS):
            setup.create(key(i), VALUE)
        setup.close()
        rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for rnd in range(a.rounds):
            for op in a.ops.split(","):
                for transport in ("jute", "grpc"):  # A B A B
                    if transport == "grpc":
                        r = run_child(["--grpc-load", f"127.0.0.1:{gport}", op,
                                       "--duration", str(a.duration),
                                       "--warmup", str(a.warmup)], server.pid, run_timeout)
                    elif a.jute_client == "python":
                        r = run_child(["--jute-load", str(jport), op,
                                       "--duration", str(a.duration),
                                       "--warmup", str(a.warmup)], server.pid, run_timeout)
                    else:
                        z = run_zkbench(zkbench, jport, op, a.duration, a.warmup,
                                        server.pid, run_timeout)
                        rate = find(z, "throughput", "ops_per_sec", "rate")
                        cpu = find(z, "server_cpu_us_per_op", "cpu_us_per_op")
                        r = {"rate": rate or 0.0, "server_us_per_op": cpu or 0.0,
                             "raw": z}
                    rows.setdefault((op, transport), []).append(r)
                    print(f"round {rnd + 1} {op:3} {transport:4} "
                          f"{r['rate']:9.0f} ops/s  server {r['server_us_per_op']:6.1f} "
                          f"us CPU/op", flush=True)
        print()
        print(f"medians over {a.rounds} rounds, {a.duration}s each, {CONNS} sessions x "
              f"{OUTSTANDING} in flight, storage={a.storage}, jute client={a.jute_client}, "
              f"grpc client=grpc.aio (Python)")
        print("| op | jute ops/s | grpc ops/s | grpc/jute throughput | jute us CPU/op | "
              "grpc us CPU/op | grpc/jute CPU per op |")
        print("|---|---|---|---|---|---|---|")
        for op in a.ops.split(","):
            j = rows[(op, "jute")]
            g = rows[(op, "grpc")]
            jr = statistics.median(x["rate"] for x in j)
            gr = statistics.median(x["rate"] for x in g)
            jc = statistics.median(x["server_us_per_op"] for x in j)
            gc = statistics.median(x["server_us_per_op"] for x in g)
            print(f"| {op} | {jr:.0f} | {gr:.0f} | {gr / jr:.2f} | {jc:.1f} | {gc:.1f} | "
                  f"{gc / jc if jc else float('nan'):.2f} |")
        return 0
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
