"""Differential tests: zkernel against Apache ZooKeeper 3.8 on the same sequences.

* test_ci_seeds: a fixed seed set against both servers (skipped without Java/ZooKeeper);
* test_saved_case: every cases/*.json replayed against zkernel only, compared with the
  ZooKeeper observations recorded when the case was shrunk;
* test_soak: many more sequences (``-m soak``).
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
SOAK_SEQUENCES = int(os.environ.get("ZK_DIFF_SOAK_SEQUENCES", "1000"))
SOAK_SECONDS = float(os.environ.get("ZK_DIFF_SOAK_SECONDS", "1500"))

needs_zookeeper = pytest.mark.skipif(not shrink.zookeeper_available(),
                                     reason="Java or Apache ZooKeeper (Debian zookeeper) "
                                            "is not installed")


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[shrink.Pair]:
    with shrink.server_pair(tmp_path_factory.mktemp("diff")) as p:
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
@pytest.mark.soak
def test_soak(pair: shrink.Pair, tmp_path: Path) -> None:
    save_dir = (shrink.CASES if os.environ.get("ZK_DIFF_SAVE_CASES") else tmp_path)
    res = shrink.run_batch(pair, range(10_000, 10_000 + SOAK_SEQUENCES), 60,
                           max_seconds=SOAK_SECONDS, save=True, save_dir=save_dir)
    print(f"soak: {res['sequences']} sequences, {res['operations']} operations, "
          f"{res['seconds']:.0f} s")
    assert not res["differences"], _report(res)


CASE_FILES = sorted(shrink.CASES.glob("*.json"))


@pytest.fixture(scope="module")
def zkernel_runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    srv = ZkernelServer(tmp_path_factory.mktemp("replay"), shrink.SERVER_CFG)
    srv.start(60)
    r = Runner(srv.host, srv.port)
    try:
        yield r
    finally:
        r.close()
        srv.stop()


@pytest.mark.parametrize("case_file", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_saved_case(case_file: Path, zkernel_runner: Runner) -> None:
    case = json.loads(case_file.read_text())
    if case.get("known_bug"):
        pytest.xfail(f"known zkernel bug: {case['known_bug']}")
    actual = normalize.normalize(zkernel_runner.run(case))
    i = normalize.first_difference(case["expected"], actual)
    assert i is None, (f"{case_file.name} step {i}: {json.dumps(case['steps'][i])}\n"
                       f"  expected (ZooKeeper): {json.dumps(case['expected'][i])}\n"
                       f"  zkernel:              {json.dumps(actual[i])}")
