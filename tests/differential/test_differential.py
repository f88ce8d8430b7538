"""Differential tests: zkernel against Apache ZooKeeper 3.8 on the same sequences.

* test_ci_seeds: a fixed seed set against both servers (skipped without Java/ZooKeeper);
* test_ci_timing_seeds: a fixed seed set of timing sequences (session expiry, TTL expiry,
  container reaping, setWatches after a reconnect) against both servers run with short
  timers (shrink.TIMING_CFG);
* test_saved_case: every cases/*.json replayed against zkernel only, compared with the
  ZooKeeper observations recorded when the case was shrunk (timing cases on a zkernel
  with the short timers);
* test_soak, test_timing_soak: many more sequences (``-m soak``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import ZkernelServer

from . import normalize, shrink
from .runner import Runner

CI_SEEDS = range(0, 100)
CI_STEPS = 40
# timing sequences wait for the servers' timers: about 2 s per sequence on each server
CI_TIMING_SEEDS = range(0, 7)
CI_TIMING_STEPS = 30
SOAK_SEQUENCES = int(os.environ.get("ZK_DIFF_SOAK_SEQUENCES", "1000"))
SOAK_SECONDS = float(os.environ.get("ZK_DIFF_SOAK_SECONDS", "1500"))
SOAK_TIMING_SEQUENCES = int(os.environ.get("ZK_DIFF_SOAK_TIMING_SEQUENCES", "300"))
SOAK_TIMING_SECONDS = float(os.environ.get("ZK_DIFF_SOAK_TIMING_SECONDS", "1200"))

needs_zookeeper = pytest.mark.skipif(not shrink.zookeeper_available(),
                                     reason="Java or Apache ZooKeeper (Debian zookeeper) "
                                            "is not installed")


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[shrink.Pair]:
    with shrink.server_pair(tmp_path_factory.mktemp("diff")) as p:
        yield p


@pytest.fixture(scope="module")
def timing_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[shrink.Pair]:
    with shrink.server_pair(tmp_path_factory.mktemp("diff-timing"), shrink.TIMING_CFG) as p:
        yield p


def _report(res: dict[str, object]) -> str:
    diffs = res["differences"]
    assert isinstance(diffs, list)
    return "\n\n".join(str(d.get("minimal", d["first"])) + (f"\n  saved: {d['case']}"
                                                              if "case" in d else "")
                       for d in diffs)


@needs_zookeeper
def test_ci_seeds(pair: shrink.Pair, tmp_path: Path) -> None:
    save_dir = (shrink.CASES if os.environ.get("ZK_DIFF_SAVE_CASES") else tmp_path)
    res = shrink.run_batch(pair, CI_SEEDS, CI_STEPS, max_seconds=75, save=True,
                           save_dir=save_dir)
    assert res["sequences"] == len(CI_SEEDS), f"ran only {res['sequences']} in time"
    assert not res["differences"], _report(res)


@needs_zookeeper
def test_ci_timing_seeds(timing_pair: shrink.Pair, tmp_path: Path) -> None:
    save_dir = (shrink.CASES if os.environ.get("ZK_DIFF_SAVE_CASES") else tmp_path)
    res = shrink.run_batch(timing_pair, CI_TIMING_SEEDS, CI_TIMING_STEPS, max_seconds=90,
                           save=True, save_dir=save_dir, timing=True)
    assert res["sequences"] == len(CI_TIMING_SEEDS), f"ran only {res['sequences']} in time"
    assert not res["differences"], _report(res)


@needs_zookeeper
@pytest.mark.soak
def test_timing_soak(timing_pair: shrink.Pair, tmp_path: Path) -> None:
    save_dir = (shrink.CASES if os.environ.get("ZK_DIFF_SAVE_CASES") else tmp_path)
    res = shrink.run_batch(timing_pair, range(10_000, 10_000 + SOAK_TIMING_SEQUENCES), 40,
                           max_seconds=SOAK_TIMING_SECONDS, save=True, save_dir=save_dir,
                           timing=True)
    print(f"timing soak: {res['sequences']} sequences, {res['operations']} operations, "
          f"{res['seconds']:.0f} s")
    assert not res["differences"], _report(res)


@needs_zookeeper
@pytest.mark.soak
def test_soak(pair: shrink.Pair, tmp_path: Path) -> None:
    save_dir = (shrink.CASES if os.environ.get("ZK_DIFF_SAVE_CASES") else tmp_path)
    res = shrink.run_batch(pair, range(10_000, 10_000 + SOAK_SEQUENCES), 60,
                           max_seconds=SOAK_SECONDS, save=True, save_dir=save_dir)
    print(f"soak: {res['sequences']} sequences, {res['operations']} operations, "
          f"{res['seconds']:.0f} s")
    assert not res["differences"], _report(res)


CASE_FILES = sorted(shrink.CASES.glob("*.json"))


class ZkernelRunners:
    """One zkernel server (and runner) per server configuration, started on first use."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: dict[str, tuple[ZkernelServer, Runner]] = {}

    def get(self, case: dict[str, object]) -> Runner:
        key = "timing" if case.get("timing") else "plain"
        if key not in self.started:
            srv = ZkernelServer(self.workdir / key, shrink.config_for(case))
            srv.start(60)
            try:
                self.started[key] = (srv, Runner(srv.host, srv.port))
            except BaseException:
                srv.stop()
                raise
        return self.started[key][1]

    def stop(self) -> None:
        for srv, r in self.started.values():
            try:
                r.close()
            finally:
                srv.stop()


@pytest.fixture(scope="module")
def zkernel_runners(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZkernelRunners]:
    runners = ZkernelRunners(tmp_path_factory.mktemp("replay"))
    try:
        yield runners
    finally:
        runners.stop()


@pytest.mark.parametrize("case_file", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_saved_case(case_file: Path, zkernel_runners: ZkernelRunners) -> None:
    case = json.loads(case_file.read_text())
    if case.get("known_bug"):
        pytest.xfail(f"known zkernel bug: {case['known_bug']}")
    actual = normalize.normalize(zkernel_runners.get(case).run(case))
    i = normalize.first_difference(case["expected"], actual)
    assert i is None, (f"{case_file.name} step {i}: {json.dumps(case['steps'][i])}\n"
                       f"  expected (ZooKeeper): {json.dumps(case['expected'][i])}\n"
                       f"  zkernel:              {json.dumps(actual[i])}")


def test_timing_generator_invariants() -> None:
    """What makes timing sequences deterministic (generator.py, timing section): timers
    only start in steps followed by a wait, and only the short slot is ever dropped."""
    from . import generator

    for seed in range(300):
        seq = generator.generate_timing(seed, 40)
        short = seq["short"]
        assert seq["timeouts"][str(short)] == generator.SHORT_SESSION_MS
        detached = False
        since_ttl: int | None = None
        for st in seq["steps"]:
            op = st["op"]
            short_ttl = op == "createTTL" and 0 < st["ttl"] < 60000 and st["flags"] in (5, 6)
            if op == "createContainer" or short_ttl:
                assert st["path"].startswith("/t/"), st
            if short_ttl:
                since_ttl = 0 if since_ttl is None else since_ttl
            if op in ("disconnect", "reconnect"):
                assert st["s"] == short, st
                detached = op == "disconnect"
            elif detached and op != "wait":
                assert st["s"] != short, st
            if st["s"] == short:
                assert op != "oversized", st
            if since_ttl is not None:
                since_ttl = None if op == "wait" else since_ttl + 1
                assert since_ttl is None or since_ttl < 10, seq["steps"]
