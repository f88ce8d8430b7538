"""Fixtures shared by the kazoo suites: a server per module, client pools."""

from __future__ import annotations

import pytest

from tests.integration import kazoo_helpers as kh


@pytest.fixture
def clients(server_factory):
    pool = kh.ClientPool()
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    holder = kh.SharedServer(tmp_path_factory)
    yield holder
    holder.close()


@pytest.fixture
def srv(shared):
    """The module's shared server (tests on it use their own distinct paths)."""
    return shared.get()


@pytest.fixture
def zk(srv, clients):
    return clients.new(srv)


@pytest.fixture
def zk2(srv, clients):
    return clients.new(srv)


@pytest.fixture
def zk_fresh(server, clients):
    """A client of a brand-new server, for tests that look at global state."""
    return clients.new(server)
