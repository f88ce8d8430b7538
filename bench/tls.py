"""TLS against plain on the same server: connection setup time and getData throughput,
for zkernel and for Apache ZooKeeper 3.8 (Debian) configured the same way.

    python bench/tls.py [--rounds 3] [--duration 3] [--setup-conns 100] [--no-zookeeper]

Each server listens on clientPort (plain) and secureClientPort (TLS 1.2, the default of
both; ``ssl.clientAuth=need`` with a client certificate, so x509 auth runs on every TLS
connection; forceSync=no on both). Certificates are made in a temp dir. Apache ZooKeeper
is started by ../shared/bench/run-zookeeper.sh with NettyServerCnxnFactory (required for
TLS) and X509AuthenticationProvider, from a --zk-home of symlinks to the Debian jars plus
the Netty jars the Debian manifest leaves out.

Measures, A B A B (plain, TLS, plain, TLS, ...) for ``--rounds`` rounds:
* setup: ``--setup-conns`` sequential connections, each TCP connect (+ TLS handshake) +
  ConnectRequest → ConnectResponse; the median per connection (each session is then
  closed with closeSession);
* get: 4 connections × 64 getData in flight on 1000 znodes of 100 bytes, for
  ``--duration`` s after 0.5 s of warm-up; operations per second.
Prints every run, the medians and the TLS/plain ratios. Every server is always stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.certs import CertFactory, Issued  # noqa: E402

RUN_ZK = REPO.parent / "shared" / "bench" / "run-zookeeper.sh"
JARS = Path("/usr/share/java")
KEYS = 1000
VALUE = b"v" * 100
CONNS = 4
OUTSTANDING = 64
ROOT = "/tlsbench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the wire --------------------------------------------------------------------------


def _ustr(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">i", len(b)) + b


def _frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


CONNECT = _frame(struct.pack(">iqiq", 0, 0, 30000, 0) + struct.pack(">i", 16) + bytes(16)
                 + b"\x00")


def get_data(xid: int, path: str) -> bytes:
    return _frame(struct.pack(">ii", xid, 4) + _ustr(path) + b"\x00")


def create(xid: int, path: str, data: bytes) -> bytes:
    acl = struct.pack(">i", 1) + struct.pack(">i", 31) + _ustr("world") + _ustr("anyone")
    return _frame(struct.pack(">ii", xid, 1) + _ustr(path) + struct.pack(">i", len(data))
                  + data + acl + struct.pack(">i", 0))


CLOSE = _frame(struct.pack(">ii", 1, -11))


async def read_frame(r: asyncio.StreamReader) -> bytes:
    n = struct.unpack(">i", await r.readexactly(4))[0]
    return await r.readexactly(n)


async def session(port: int, ctx: ssl.SSLContext | None
                  ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                         server_hostname="127.0.0.1" if ctx else None)
    w.write(CONNECT)
    resp = await read_frame(r)
    if len(resp) < 20 or struct.unpack(">i", resp[4:8])[0] <= 0:
        raise RuntimeError("session refused")
    return r, w


async def close(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    w.write(CLOSE)
    try:
        await asyncio.wait_for(read_frame(r), 5)
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        pass
    w.close()


async def populate(port: int) -> None:
    r, w = await session(port, None)
    w.write(create(1, ROOT, b""))
    for i in range(KEYS):
        w.write(create(i + 2, f"{ROOT}/k{i}", VALUE))
    for _ in range(KEYS + 1):
        await read_frame(r)
    await close(r, w)


async def measure_setup(port: int, ctx: ssl.SSLContext | None, n: int) -> float:
    """Median seconds from connect to ConnectResponse over ``n`` sequential sessions."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        r, w = await session(port, ctx)
        times.append(time.perf_counter() - t0)
        await close(r, w)
    return statistics.median(times)


async def measure_get(port: int, ctx: ssl.SSLContext | None, duration: float) -> float:
    """getData operations per second with CONNS × OUTSTANDING in flight."""
    conns = [await session(port, ctx) for _ in range(CONNS)]
    done = [0] * CONNS
    counting = False
    stop = False

    async def drive(i: int, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        rnd = random.Random(i)
        xid = 1
        for _ in range(OUTSTANDING):
            w.write(get_data(xid, f"{ROOT}/k{rnd.randrange(KEYS)}"))
            xid += 1
        while not stop:
            await read_frame(r)
            if counting:
                done[i] += 1
            w.write(get_data(xid, f"{ROOT}/k{rnd.randrange(KEYS)}"))
            xid += 1
        for _ in range(OUTSTANDING):
            await read_frame(r)

    tasks = [asyncio.create_task(drive(i, r, w)) for i, (r, w) in enumerate(conns)]
    await asyncio.sleep(0.5)
    counting = True
    t0 = time.perf_counter()
    await asyncio.sleep(duration)
    counting = False
    elapsed = time.perf_counter() - t0
    stop = True
    await asyncio.gather(*tasks)
    for r, w in conns:
        await close(r, w)
    return sum(done) / elapsed


# -- servers ---------------------------------------------------------------------------


class Pki:
    def __init__(self, d: Path) -> None:
        self.ca = CertFactory(d / "ca")
        self.server: Issued = self.ca.issue("server", "localhost", server=True)
        self.client: Issued = self.ca.issue("client", "bench")

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(str(self.ca.ca_pem))
        ctx.load_cert_chain(str(self.client.cert_pem), str(self.client.key_pem))
        return ctx

    def cfg(self, secure_port: int) -> dict[str, str]:
        return {
            "secureClientPort": str(secure_port),
            "ssl.keyStore.location": str(self.server.keystore_pem),
            "ssl.trustStore.location": str(self.ca.ca_pem),
            "ssl.clientAuth": "need",
            "forceSync": "no",
        }


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"srvr")
                if b"Mode" in s.recv(4096):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no server on {port}")


class Zkernel:
    name = "zkernel"

    def __init__(self, d: Path, pki: Pki) -> None:
        self.port, self.secure = free_port(), free_port()
        cfg = {"tickTime": "2000", "dataDir": str(d / "data"), "clientPort": str(self.port),
               "clientPortAddress": "127.0.0.1", "maxClientCnxns": "0", **pki.cfg(self.secure)}
        (d / "zoo.cfg").write_text("".join(f"{k}={v}\n" for k, v in cfg.items()))
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kernel", "serve", "--config", str(d / "zoo.cfg")],
            stdout=open(d / "server.log", "wb"), stderr=subprocess.STDOUT, env=env,
            start_new_session=True)
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def zk_home(d: Path) -> Path:
    """A --zk-home of symlinks: the Debian jars zookeeper.jar's manifest names, plus the
    Netty jars it leaves out (NettyServerCnxnFactory needs them) and slf4j-simple."""
    home = d / "zkhome"
    lib = home / "lib"
    lib.mkdir(parents=True)
    (home / "conf").mkdir()
    names = {"zookeeper.jar", "zookeeper-jute.jar", "slf4j-api.jar", "slf4j-simple.jar",
             "netty-buffer.jar", "netty-codec.jar", "netty-common.jar", "netty-handler.jar",
             "netty-resolver.jar", "netty-transport.jar", "netty-transport-native-epoll.jar",
             "netty-transport-native-unix-common.jar", "commons-cli.jar", "jline.jar",
             "metrics-core.jar", "snappy-java.jar", "jackson-annotations.jar",
             "jackson-core.jar", "jackson-databind.jar"}
    for n in names:
        if (JARS / n).exists():
            (lib / n).symlink_to(JARS / n)
    return home


class ApacheZooKeeper:
    name = "zookeeper"

    def __init__(self, d: Path, pki: Pki) -> None:
        self.port, self.secure = free_port(), free_port()
        cfg = {**pki.cfg(self.secure),
               "serverCnxnFactory": "org.apache.zookeeper.server.NettyServerCnxnFactory",
               "authProvider.x509":
                   "org.apache.zookeeper.server.auth.X509AuthenticationProvider",
               "maxClientCnxns": "0"}
        force = cfg.pop("forceSync")
        args = ["bash", str(RUN_ZK), "--port-base", str(self.port), "--dir", str(d / "zk"),
                "--zk-home", str(zk_home(d)), "--force-sync", force, "--log-level", "warn"]
        for k, v in cfg.items():
            args += ["--cfg", f"{k}={v}"]
        p = subprocess.run(args, capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"run-zookeeper.sh failed:\n{p.stderr}")
        self.dir = d / "zk"

    def stop(self) -> None:
        subprocess.run(["bash", str(RUN_ZK), "--stop", "--dir", str(self.dir)],
                       capture_output=True, timeout=60)


# -- main ------------------------------------------------------------------------------


async def bench(srv: Zkernel | ApacheZooKeeper, pki: Pki, rounds: int, duration: float,
                setup_conns: int) -> dict[str, dict[str, list[float]]]:
    await populate(srv.port)
    ctx = pki.client_context()
    out: dict[str, dict[str, list[float]]] = {"plain": {"setup": [], "get": []},
                                              "tls": {"setup": [], "get": []}}
    for r in range(rounds):
        for mode, port, c in (("plain", srv.port, None), ("tls", srv.secure, ctx)):
            setup = await measure_setup(port, c, setup_conns)
            get = await measure_get(port, c, duration)
            out[mode]["setup"].append(setup)
            out[mode]["get"].append(get)
            print(f"  {srv.name} round {r + 1} {mode:5}: setup {setup * 1000:7.3f} ms  "
                  f"getData {get:9.0f} /s", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--setup-conns", type=int, default=100)
    ap.add_argument("--no-zookeeper", action="store_true")
    a = ap.parse_args()
    kinds: list[type[Zkernel] | type[ApacheZooKeeper]] = [Zkernel]
    if not a.no_zookeeper:
        kinds.append(ApacheZooKeeper)
    summary = []
    with tempfile.TemporaryDirectory(prefix="tlsbench-") as tmp:
        pki = Pki(Path(tmp) / "pki")
        for kind in kinds:
            d = Path(tmp) / kind.name
            d.mkdir()
            srv = kind(d, pki)
            try:
                res = asyncio.run(bench(srv, pki, a.rounds, a.duration, a.setup_conns))
            finally:
                srv.stop()
            med = {m: {k: statistics.median(v) for k, v in res[m].items()} for m in res}
            summary.append((kind.name, med))
    print()
    print(f"{'server':10} {'setup plain':>12} {'setup TLS':>10} {'ratio':>6}   "
          f"{'get plain/s':>11} {'get TLS/s':>10} {'ratio':>6}")
    for name, med in summary:
        sp, st = med["plain"]["setup"] * 1000, med["tls"]["setup"] * 1000
        gp, gt = med["plain"]["get"], med["tls"]["get"]
        print(f"{name:10} {sp:9.3f} ms {st:7.3f} ms {st / sp:6.2f}   {gp:11.0f} {gt:10.0f} "
              f"{gt / gp:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
