#!/usr/bin/env python3
"""3-server ensemble benchmark: zkernel against Apache ZooKeeper 3.8 on this machine.

1. Write throughput, A B A B: zkbench ``create`` and ``set`` against a 3-server ZooKeeper
   ensemble (A) and a 3-server zkernel ensemble (B), both running side by side with the
   same zoo.cfg (tickTime 2000, initLimit 10, syncLimit 5, forceSync=yes, dataDir and
   dataLogDir per server on the same file system, maxClientCnxns=0,
   clientPortListenBacklog=1024; ZooKeeper with -Xmx1000m as upstream's zkServer.sh).
   ../shared/bench/compare.py does the alternation and prints medians, min-max and
   B/A ratios; zkbench spreads its connections over the three servers.  Each side first
   gets one unrecorded warm-up run per op (README: a JVM ensemble needs a while).
2. Failover: with a small kazoo write load running, SIGKILL the leader and measure the
   time to the first acknowledged write *sent after* the kill (and to the first srvr
   "Mode: leader" among the survivors); the killed server is restarted and the ensemble
   settles before the next try.  Median and spread over ``--failovers`` tries per side.

    python3 bench/ensemble.py [--rounds 3] [--duration 10] [--ops create,set]
                              [--failovers 3] [--only zookeeper|zkernel]

Everything runs on 127.0.0.1 on free ports in a temporary directory that is removed at
the end; every server started is killed, also on errors and Ctrl-C.  Exit status: 0, or
1 if a side failed to start or a run failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.ensemble import Ensemble, WriteLoad  # noqa: E402

BENCH_TIMERS: dict[str, object] = {"tickTime": 2000, "initLimit": 10, "syncLimit": 5}
BENCH_CFG: dict[str, object] = {"forceSync": "yes", "clientPortListenBacklog": 1024}


def log(msg: str) -> None:
    print(f"[ensemble-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def build_zkbench(work: Path, shared: Path) -> Path:
    dst = work / "bench"
    shutil.copytree(shared / "bench", dst)
    subprocess.run(["make", "-s", "-C", str(dst)], check=True, stdout=subprocess.DEVNULL)
    return dst


def start_side(kind: str, work: Path, tick: int, keep: bool) -> Ensemble:
    timers = dict(BENCH_TIMERS, tickTime=tick)
    ens = Ensemble(3, work / kind, kind=kind, proxied=False, timers=timers, cfg=BENCH_CFG,
                   heap_mb=1000, jvm_flags=(), zkernel_args=("--log-level", "WARNING"),
                   data_log_dir=True, keep=keep)
    t0 = time.monotonic()
    ens.start(timeout=120)
    log(f"{kind}: 3 servers serving after {time.monotonic() - t0:.1f}s "
        f"(leader = server {ens.leader()}) at {ens.connect_string()}")
    return ens


def pids(ens: Ensemble) -> str:
    return ",".join(str(m.pid) for m in ens.members if m.alive)


def warm_up(bench: Path, ens: Ensemble, ops: list[str], duration: int) -> None:
    for op in ops:
        subprocess.run([str(bench / "zkbench"), "--servers", ens.connect_string(), "--op", op,
                        "--quiet", "--duration", str(duration), "--warmup", "1",
                        "--connections", "4", "--outstanding", "64", "--value-size", "100"],
                       check=False, stdout=subprocess.DEVNULL, timeout=duration + 120)


def throughput(bench: Path, sides: list[tuple[str, Ensemble]], args: argparse.Namespace,
               out: Path) -> int:
    cmd = [sys.executable, str(bench / "compare.py"),
           "--a", sides[0][1].connect_string(), "--a-label", f"{sides[0][0]}-x3",
           "--a-pid", pids(sides[0][1])]
    if len(sides) > 1:
        cmd += ["--b", sides[1][1].connect_string(), "--b-label", f"{sides[1][0]}-x3",
                "--b-pid", pids(sides[1][1])]
    cmd += ["--ops", args.ops, "--rounds", str(args.rounds), "--zkbench",
            str(bench / "zkbench"), "--out", str(out), "--",
            "--connections", "4", "--outstanding", "64", "--duration", str(args.duration),
            "--warmup", "2", "--value-size", "100"]
    log("throughput: " + " ".join(cmd))
    budget = len(args.ops.split(",")) * args.rounds * len(sides) * (args.duration + 120)
    return subprocess.run(cmd, check=False, timeout=budget).returncode


def failover(kind: str, ens: Ensemble, tries: int) -> list[tuple[float, float]]:
    """[(SIGKILL -> survivor says leader, SIGKILL -> first write sent after it acked)]."""
    results = []
    for n in range(tries):
        ens.wait_serving(120)
        old = ens.leader()
        with WriteLoad(ens, root=f"/failover-{n}", writers=2, max_writes=100_000,
                       max_seconds=120, pause=0.002, op_timeout=5.0,
                       session_timeout=30.0) as load:
            load.wait_acks(50, timeout=60)
            t_kill = ens.kill(old)
            ens.leader(timeout=120, among=[i for i in range(ens.size) if i != old])
            t_leader = time.monotonic() - t_kill
            t_write = load.first_ack_after(t_kill, timeout=120)
        log(f"{kind} failover {n + 1}/{tries}: killed leader {old}; a survivor reports "
            f"leader after {t_leader * 1000:.0f} ms; first write after the kill acknowledged "
            f"after {t_write * 1000:.0f} ms")
        results.append((t_leader, t_write))
        ens.launch(old)
        ens.wait_member_serving(old, timeout=120)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--ops", default="create,set")
    ap.add_argument("--failovers", type=int, default=3,
                    help="SIGKILL-the-leader tries per side (0: skip)")
    ap.add_argument("--tick", type=int, default=2000, help="tickTime in ms (default 2000)")
    ap.add_argument("--only", choices=["zookeeper", "zkernel"],
                    help="measure one side only (e.g. zookeeper before zkernel has ensembles)")
    ap.add_argument("--shared", default=os.environ.get("SHARED", str(REPO.parent / "shared")),
                    help="the shared directory holding bench/ (zkbench, compare.py)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    ap.add_argument("--out", help="also copy compare.py's raw JSON lines to this file")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kazoo").setLevel(logging.CRITICAL)  # reconnects are expected here

    kinds = [args.only] if args.only else ["zookeeper", "zkernel"]
    work = Path(tempfile.mkdtemp(prefix="zkernel-ensemble-bench."))
    sides: list[tuple[str, Ensemble]] = []
    status = 0
    try:
        bench = build_zkbench(work, Path(args.shared))
        for kind in kinds:
            try:
                sides.append((kind, start_side(kind, work, args.tick, args.keep)))
            except Exception as e:  # noqa: BLE001 - report and go on with the other side
                log(f"{kind}: could not start a 3-server ensemble: {e}")
                status = 1
        if not sides:
            return 1
        for kind, ens in sides:
            log(f"{kind}: warm-up ({args.ops}, {args.duration}s each, not recorded)")
            warm_up(bench, ens, args.ops.split(","), args.duration)
        raw = work / "compare-results.jsonl"
        if throughput(bench, sides, args, raw) != 0:
            status = 1
        if args.out and raw.exists():
            shutil.copyfile(raw, args.out)
            log(f"raw zkbench results copied to {args.out}")
        failovers: dict[str, list[tuple[float, float]]] = {}
        for kind, ens in sides:
            if args.failovers > 0:
                try:
                    failovers[kind] = failover(kind, ens, args.failovers)
                except Exception as e:  # noqa: BLE001
                    log(f"{kind}: failover measurement failed: {e}")
                    status = 1
        if failovers:
            print(f"\n### SIGKILL of the leader (3 servers, tickTime {args.tick} ms, "
                  f"initLimit 10, syncLimit 5), {args.failovers} tries each\n")
            print("| server | to first acked write, median (min-max) ms "
                  "| to a survivor reporting leader, median ms |")
            print("|---|---|---|")
            for kind, res in failovers.items():
                w = [r[1] * 1000 for r in res]
                ld = [r[0] * 1000 for r in res]
                print(f"| {kind}-x3 | {statistics.median(w):,.0f} ({min(w):,.0f}-{max(w):,.0f})"
                      f" | {statistics.median(ld):,.0f} |")
        return status
    except KeyboardInterrupt:
        log("interrupted")
        return 1
    finally:
        for _, ens in sides:
            ens.close()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
