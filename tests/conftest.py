"""Fixtures: a real server process per test (or module), stopped even when a test fails."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.servers import ServerProcess, server_class


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers with extra zoo.cfg keys: ``server_factory(cfg={...})``."""
    started: list[ServerProcess] = []

    def make(cfg: dict[str, object] | None = None, start: bool = True) -> ServerProcess:
        srv = server_class()(tmp_path / f"srv{len(started)}", cfg)
        started.append(srv)
        if start:
            srv.start()
        return srv

    yield make
    for srv in started:
        srv.stop()


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    """One fresh standalone server with the default test config."""
    return server_factory()
