"""Compare runs on two servers, shrink differing sequences, save regression cases.

``python -m tests.differential.shrink --seeds 0:200 --steps 40 [--save] [--timing]`` runs a batch
against freshly started Apache ZooKeeper and zkernel servers, prints every difference,
shrinks each one (delta debugging over steps and multi sub-ops) and with ``--save``
writes ``cases/<name>.json`` holding the sequence and ZooKeeper's normalised observations.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.servers import ZK_JAR_DIR, ApacheZooKeeperServer, ZkernelServer

from . import generator, normalize
from .runner import Runner

CASES = Path(__file__).resolve().parent / "cases"
# Containers must not be reaped while an ordinary sequence runs (its timing is not
# compared).
SERVER_CFG: dict[str, object] = {"znode.container.checkIntervalMs": 3600000}
# Timing sequences (generator.generate_timing) run on servers with short timers: a 100 ms
# tick (session expiry is checked every tick), long sessions allowed, the reaper every
# 100 ms without a rate limit that matters, and no fsync (a reaper pass must not find the
# previous pass's deletion still in flight).
TIMING_CFG: dict[str, object] = {
    "tickTime": 100, "minSessionTimeout": 200, "maxSessionTimeout": 60000,
    "znode.container.checkIntervalMs": 100, "znode.container.maxPerMinute": 60000,
    "forceSync": "no",
}


def zookeeper_available() -> bool:
    return shutil.which("java") is not None and (ZK_JAR_DIR / "zookeeper.jar").exists()


class Pair:
    """A runner on Apache ZooKeeper and one on zkernel."""

    def __init__(self, zk: Runner, zs: Runner) -> None:
        self.zk, self.zs = zk, zs

    def compare(self, seq: dict[str, Any]) -> tuple[int | None, list[Any], list[Any]]:
        """(first differing step or None, ZooKeeper's observations, zkernel's)."""
        a = normalize.normalize(self.zk.run(seq))
        b = normalize.normalize(self.zs.run(seq))
        return normalize.first_difference(a, b), a, b


def config_for(seq: dict[str, Any]) -> dict[str, object]:
    """The server settings a sequence (or saved case) runs under."""
    return TIMING_CFG if seq.get("timing") else SERVER_CFG


@contextmanager
def server_pair(workdir: Path | None = None,
                cfg: dict[str, object] | None = None) -> Iterator[Pair]:
    """Start both servers once; yield a Pair; always stop them."""
    tmp = Path(tempfile.mkdtemp(prefix="zkdiff-")) if workdir is None else workdir
    zk = ApacheZooKeeperServer(tmp / "zookeeper", cfg or SERVER_CFG)
    zs = ZkernelServer(tmp / "zkernel", cfg or SERVER_CFG)
    runners: list[Runner] = []
    try:
        zk.start(60)
        zs.start(60)
        runners = [Runner(zk.host, zk.port), Runner(zs.host, zs.port)]
        yield Pair(*runners)
    finally:
        for r in runners:
            r.close()
        zk.stop()
        zs.stop()
        if workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)


def _with_steps(seq: dict[str, Any], steps: list[Any]) -> dict[str, Any]:
    out = dict(seq)
    out["steps"] = steps
    return out


def shrink(pair: Pair, seq: dict[str, Any], max_tries: int = 400,
           max_seconds: float = 180.0) -> dict[str, Any]:
    """A smaller sequence that still differs (delta debugging), within the budgets."""
    deadline = time.monotonic() + max_seconds
    tries = 0

    def differs(steps: list[Any]) -> bool:
        nonlocal tries
        if tries >= max_tries or time.monotonic() > deadline or not steps:
            return False
        tries += 1
        return pair.compare(_with_steps(seq, steps))[0] is not None

    steps = list(seq["steps"])
    if not differs(steps):
        return seq  # not reproducible
    # cut everything after the first difference
    i = pair.compare(_with_steps(seq, steps))[0]
    if i is not None and differs(steps[:i + 1]):
        steps = steps[:i + 1]
    n = 2
    while len(steps) >= 2:
        chunk = max(1, len(steps) // n)
        reduced = False
        for start in range(0, len(steps), chunk):
            cand = steps[:start] + steps[start + chunk:]
            if differs(cand):
                steps, n, reduced = cand, max(n - 1, 2), True
                break
        if not reduced:
            if chunk == 1:
                break
            n = min(len(steps), n * 2)
    # drop sub-operations of multi / multiRead steps
    for idx in range(len(steps)):
        ops = steps[idx].get("ops")
        j = 0
        while ops is not None and len(ops) > 1 and j < len(ops):
            cand = copy.deepcopy(steps)
            del cand[idx]["ops"][j]
            if differs(cand):
                steps, ops = cand, cand[idx]["ops"]
            else:
                j += 1
    # renumber slots densely (dropping sessions that no longer act); a timing sequence's
    # per-slot session timeouts move with their slots
    used = sorted({st["s"] for st in steps})
    remap = {s: i for i, s in enumerate(used)}
    cand = [dict(st, s=remap[st["s"]]) for st in steps]
    renumbered = dict(seq)
    if "timeouts" in seq:
        renumbered["timeouts"] = {str(remap[int(k)]): v for k, v in seq["timeouts"].items()
                                  if int(k) in remap}
    if "short" in seq:
        renumbered["short"] = remap.get(seq["short"], -1)
    renumbered["slots"] = len(used)
    if remap != {s: s for s in used} or len(used) != seq.get("slots", len(used)):
        if (tries < max_tries and time.monotonic() < deadline
                and pair.compare(_with_steps(renumbered, cand))[0] is not None):
            return _with_steps(renumbered, cand)
    return _with_steps(seq, steps)


def save_case(name: str, seq: dict[str, Any], expected: list[Any], note: str = "",
              known_bug: str = "", directory: Path = CASES) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    case: dict[str, Any] = {"name": name, "seed": seq["seed"], "slots": seq.get("slots", 3),
                            "note": note, "known_bug": known_bug}
    for key in ("timing", "timeouts", "short"):  # timing sequences
        if key in seq:
            case[key] = seq[key]
    case.update(steps=seq["steps"], expected=expected)
    path.write_text(json.dumps(case, indent=1, ensure_ascii=False) + "\n")
    return path


def describe(seq: dict[str, Any], i: int, a: list[Any], b: list[Any]) -> str:
    step = seq["steps"][i] if i < len(seq["steps"]) else None
    return (f"seed {seq['seed']} step {i}: {json.dumps(step)}\n"
            f"  zookeeper: {json.dumps(a[i] if i < len(a) else None)}\n"
            f"  zkernel:   {json.dumps(b[i] if i < len(b) else None)}")


def run_batch(pair: Pair, seeds: range, steps: int, max_seconds: float,
              shrink_found: bool = True, save: bool = False,
              save_dir: Path = CASES, timing: bool = False) -> dict[str, Any]:
    """Run seeds; returns counts and the (shrunk) differences found. ``timing``: the
    timing sequences (generator.generate_timing; the pair must run TIMING_CFG)."""
    t0 = time.monotonic()
    found: list[dict[str, Any]] = []
    ran = ops = 0
    gen = generator.generate_timing if timing else generator.generate
    for seed in seeds:
        if time.monotonic() - t0 > max_seconds:
            break
        seq = gen(seed, steps)
        i, a, b = pair.compare(seq)
        ran += 1
        ops += len(seq["steps"])
        if i is None:
            continue
        entry: dict[str, Any] = {"seed": seed, "first": describe(seq, i, a, b)}
        if shrink_found:
            small = shrink(pair, seq)
            j, a2, b2 = pair.compare(small)
            if j is not None:
                entry["minimal"] = describe(small, j, a2, b2)
                entry["steps"] = len(small["steps"])
                if save:
                    name = f"timing_seed{seed}" if timing else f"seed{seed}"
                    entry["case"] = str(save_case(name, small, a2,
                                                  note=entry["minimal"], directory=save_dir))
        found.append(entry)
    return {"sequences": ran, "operations": ops, "seconds": time.monotonic() - t0,
            "differences": found}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", default="0:30", help="start:stop")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--max-seconds", type=float, default=600)
    ap.add_argument("--save", action="store_true")
    ap.add_argument("--no-shrink", action="store_true")
    ap.add_argument("--record", action="store_true",
                    help="save each seed that agrees as a golden case (cases/golden_seedN)")
    ap.add_argument("--timing", action="store_true",
                    help="timing sequences (expiry, TTL, containers, reconnects) on servers "
                         "with short timers")
    args = ap.parse_args(argv)
    lo, hi = (int(x) for x in args.seeds.split(":"))
    gen = generator.generate_timing if args.timing else generator.generate
    prefix = "timing_" if args.timing else ""
    with server_pair(cfg=TIMING_CFG if args.timing else SERVER_CFG) as pair:
        if args.record:
            for seed in range(lo, hi):
                seq = gen(seed, args.steps)
                i, a, _ = pair.compare(seq)
                if i is None:
                    print(save_case(f"{prefix}golden_seed{seed}", seq, a,
                                    note="agreed when recorded; replayed on zkernel only"))
                else:
                    print(f"seed {seed} differs at step {i}; not recorded")
            return 0
        res = run_batch(pair, range(lo, hi), args.steps, args.max_seconds,
                        not args.no_shrink, args.save, timing=args.timing)
    for d in res["differences"]:
        print(d.get("minimal", d["first"]), "\n")
    print(f"{res['sequences']} sequences, {res['operations']} operations, "
          f"{len(res['differences'])} differing, {res['seconds']:.1f} s")
    return 1 if res["differences"] else 0


if __name__ == "__main__":
    sys.exit(main())
