"""Restart-to-serving time and memory of zkernel's LMDB storage with a large tree.

    python bench/lmdb_restart.py build DIR [--znodes 1000000] [--value-size 100]
    python bench/lmdb_restart.py restart DIR [--runs 3] [--read-all] [--cfg KEY=VALUE ...]
    python bench/lmdb_restart.py populate HOST:PORT [--znodes 1000000] [--value-size 100]

``build`` writes a fresh data directory through the storage API: ``/d<i>`` with 999
children ``/d<i>/k<j>`` each (so 1,000 directories make 1,000,000 znodes), value
``--value-size`` bytes, bulk-written with ``LmdbStorage.write_imported``; then it
reopens the store and logs 1,000 setData through the normal append/applied path.

``restart`` starts ``python -m kernel serve`` on DIR, issues 200 setData, SIGKILLs it,
and then, ``--runs`` times: starts it again and measures the time from spawning the
process until ``srvr`` answers and until a getData of a known key succeeds (so
recovery, imports, plugin loading and the first client round trip are all included),
reads the server's memory (``/proc/PID/status``), does 200 setData, and SIGKILLs it.
With ``--read-all`` the last run also reads every znode with pipelined getData and
reports the time and the memory after it. Only loopback traffic; every wait is bounded.

``populate`` creates the same tree through the client protocol on any running server
(e.g. Apache ZooKeeper, to compare its memory and restart time with the same tree).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FANOUT = 999


def key(i: int, j: int) -> str:
    return f"/d{i}/k{j}"


# ---------------------------------------------------------------------- building


def build(data_dir: Path, znodes: int, value_size: int) -> None:
    sys.path.insert(0, str(REPO))
    from kernel.acl import OPEN_ACL_UNSAFE
    from kernel.tree import DataTree
    from kernel.txn import CreateTxn, SetDataTxn, Txn
    from plugins.storage_lmdb.store import LmdbStorage

    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    t0 = time.perf_counter()
    tree = DataTree()
    data = b"x" * value_size
    z = 0
    dirs = max(1, znodes // (FANOUT + 1))
    for i in range(dirs):
        z += 1
        tree.apply(Txn(z, 0, 0, 0, 1, CreateTxn(f"/d{i}", data, OPEN_ACL_UNSAFE, 0, 0)))
        for j in range(FANOUT):
            z += 1
            tree.apply(Txn(z, 0, 0, 0, 1,
                           CreateTxn(key(i, j), data, OPEN_ACL_UNSAFE, 0, j + 1)))
    t1 = time.perf_counter()
    LmdbStorage(data_dir, force_sync=False).write_imported(tree)
    t2 = time.perf_counter()
    del tree
    st = LmdbStorage(data_dir, force_sync=False)
    tr = st.open()
    for n in range(10):
        batch = []
        for m in range(100):
            z += 1
            i, j = (n * 100 + m) % dirs, m
            t = Txn(z, 0, 0, 0, 5, SetDataTxn(key(i, j), b"y" * value_size, 1))
            tr.apply(t)
            batch.append(t)
        st.append(batch)
        st.applied(batch, tr)
    st.close()
    print(f"built {data_dir}: {dirs * (FANOUT + 1)} znodes + 4 system nodes, last zxid "
          f"{z:#x}; tree {t1 - t0:.1f}s, write {t2 - t1:.1f}s, "
          f"{sum(f.stat().st_size for f in data_dir.rglob('*') if f.is_file()) >> 20} MiB")


# ---------------------------------------------------------------------- a tiny client


def _frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def _ustring(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">i", len(b)) + b


class Client:
    """A minimal pipelining ZooKeeper client (getData/setData only)."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.xid = 0
        req = struct.pack(">iqiq", 0, 0, 30000, 0) + struct.pack(">i", 16) + bytes(16) + b"\0"
        self.sock.sendall(_frame(req))
        self._recv_frame()

    def _recv_frame(self) -> bytes:
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack_from(">i", self.buf)
                if len(self.buf) >= 4 + n:
                    out, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    return out
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk

    def _requests(self, op: int, bodies: list[bytes]) -> list[tuple[int, bytes]]:
        frames = []
        for body in bodies:
            self.xid += 1
            frames.append(_frame(struct.pack(">ii", self.xid, op) + body))
        self.sock.sendall(b"".join(frames))
        out = []
        for _ in bodies:
            rep = self._recv_frame()
            _xid, _zxid, err = struct.unpack_from(">iqi", rep)
            out.append((err, rep[16:]))
        return out

    def create_many(self, paths: list[str], data: bytes) -> None:
        acl = struct.pack(">ii", 1, 31) + _ustring("world") + _ustring("anyone")
        body = struct.pack(">i", len(data)) + data + acl + struct.pack(">i", 0)
        for err, _ in self._requests(1, [_ustring(p) + body for p in paths]):
            if err:
                raise RuntimeError(f"create failed: {err}")

    def get_many(self, paths: list[str]) -> list[tuple[int, bytes]]:
        return self._requests(4, [_ustring(p) + b"\0" for p in paths])

    def set_many(self, paths: list[str], data: bytes) -> None:
        for err, _ in self._requests(5, [_ustring(p) + struct.pack(">i", len(data)) + data +
                                         struct.pack(">i", -1) for p in paths]):
            if err:
                raise RuntimeError(f"setData failed: {err}")

    def close(self) -> None:
        self.sock.close()


# ---------------------------------------------------------------------- the server


def srvr(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
        s.sendall(b"srvr")
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                return b"".join(chunks).decode()
            chunks.append(b)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def memory(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon, RssFile in MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[k] = int(v.split()[0]) >> 10
    return out


class Server:
    def __init__(self, data_dir: Path, extra: list[str], python: str, cwd: Path) -> None:
        self.port = free_port()
        self.cfg = data_dir.parent / f"{data_dir.name}.bench.cfg"
        lines = [f"dataDir={data_dir}", f"clientPort={self.port}", "clientPortAddress=127.0.0.1",
                 "tickTime=2000", "maxClientCnxns=0", "4lw.commands.whitelist=*", *extra]
        self.cfg.write_text("\n".join(lines) + "\n")
        self.python, self.cwd = python, cwd
        self.log = data_dir.parent / f"{data_dir.name}.bench.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, probe_key: str, timeout: float = 120.0) -> tuple[float, float]:
        """Spawn; return (seconds until srvr answers, until getData of probe_key succeeds)."""
        with open(self.log, "ab") as log:
            t0 = time.perf_counter()
            self.proc = subprocess.Popen(
                [self.python, "-m", "kernel", "serve", "--config", str(self.cfg),
                 "--log-level", "WARNING"], cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT)
        deadline = t0 + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"server not serving after {timeout}s")
            try:
                if "Mode:" in srvr(self.port):
                    break
            except OSError:
                time.sleep(0.005)
        t_srvr = time.perf_counter() - t0
        c = Client(self.port)
        [(err, _)] = c.get_many([probe_key])
        t_get = time.perf_counter() - t0
        c.close()
        if err:
            raise RuntimeError(f"getData {probe_key} failed: {err}")
        return t_srvr, t_get

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill9()


def restart(data_dir: Path, runs: int, read_all: bool, extra: list[str], python: str,
            cwd: Path) -> None:
    srv = Server(data_dir, extra, python, cwd)
    probe = key(0, FANOUT // 2)  # exists in any tree this script builds
    try:
        t_srvr, t_get = srv.start(probe)
        c = Client(srv.port)
        # how many /d<i> directories the tree has: probe upwards (bounded)
        lo, hi = 0, 1
        while hi < 1 << 20 and c.get_many([f"/d{hi}"])[0][0] == 0:
            lo, hi = hi, hi * 2
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if c.get_many([f"/d{mid}"])[0][0] == 0:
                lo = mid
            else:
                hi = mid
        dirs = hi
        c.set_many([key(i % dirs, i % FANOUT) for i in range(200)], b"z" * 100)
        c.close()
        print(f"first start (after a clean stop or a build): srvr {t_srvr:.3f}s, "
              f"getData {t_get:.3f}s; {dirs} directories")
        srv.kill9()
        srvr_times, get_times = [], []
        for run in range(runs):
            t_srvr, t_get = srv.start(probe)
            assert srv.proc is not None
            mem = memory(srv.proc.pid)
            srvr_times.append(t_srvr)
            get_times.append(t_get)
            print(f"restart after SIGKILL #{run + 1}: srvr answers {t_srvr:.3f}s, getData "
                  f"{t_get:.3f}s; RSS {mem['VmRSS']} MiB (anon {mem['RssAnon']}, "
                  f"file {mem['RssFile']})", flush=True)
            if run == runs - 1 and read_all:
                c = Client(srv.port)
                t0 = time.perf_counter()
                n = 0
                for i in range(dirs):
                    paths = [f"/d{i}"] + [key(i, j) for j in range(FANOUT)]
                    for err, _ in c.get_many(paths):
                        if err:
                            raise RuntimeError(f"getData failed: {err}")
                    n += len(paths)
                dt = time.perf_counter() - t0
                c.close()
                mem = memory(srv.proc.pid)
                print(f"read all {n} znodes: {dt:.1f}s ({n / dt:.0f}/s); RSS {mem['VmRSS']} "
                      f"MiB (anon {mem['RssAnon']}, file {mem['RssFile']}), peak "
                      f"{mem['VmHWM']} MiB", flush=True)
            c = Client(srv.port)
            c.set_many([key((run * 7 + i) % dirs, i % FANOUT) for i in range(200)],
                       b"w" * 100)
            c.close()
            srv.kill9()
        print(f"median over {runs}: srvr {statistics.median(srvr_times):.3f}s, getData "
              f"{statistics.median(get_times):.3f}s")
    finally:
        srv.stop()


def populate(server: str, znodes: int, value_size: int) -> None:
    host, _, port = server.rpartition(":")
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("populate talks to a loopback server only")
    c = Client(int(port), timeout=60)
    data = b"x" * value_size
    t0 = time.perf_counter()
    dirs = max(1, znodes // (FANOUT + 1))
    for i in range(dirs):
        c.create_many([f"/d{i}"], data)
        c.create_many([key(i, j) for j in range(FANOUT)], data)
    c.close()
    print(f"created {dirs * (FANOUT + 1)} znodes in {time.perf_counter() - t0:.1f}s")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("dir", type=Path)
    b.add_argument("--znodes", type=int, default=1_000_000)
    b.add_argument("--value-size", type=int, default=100)
    r = sub.add_parser("restart")
    r.add_argument("dir", type=Path)
    r.add_argument("--runs", type=int, default=3)
    r.add_argument("--read-all", action="store_true")
    r.add_argument("--cfg", action="append", default=[], help="extra zoo.cfg line KEY=VALUE")
    r.add_argument("--python", default=sys.executable)
    r.add_argument("--repo", type=Path, default=REPO,
                   help="run the server from this checkout (for before/after comparisons)")
    pp = sub.add_parser("populate")
    pp.add_argument("server", help="127.0.0.1:PORT")
    pp.add_argument("--znodes", type=int, default=1_000_000)
    pp.add_argument("--value-size", type=int, default=100)
    a = p.parse_args()
    if a.cmd == "populate":
        populate(a.server, a.znodes, a.value_size)
    elif a.cmd == "build":
        build(a.dir.resolve(), a.znodes, a.value_size)
    else:
        restart(a.dir.resolve(), a.runs, a.read_all, a.cfg, a.python, a.repo.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
