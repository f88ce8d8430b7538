"""zoo.cfg for an ensemble: ``server.N`` lines, ``dataDir/myid``, initLimit/syncLimit
and when a configuration is replicated, as Apache ZooKeeper reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel.config import (
    ConfigError,
    PeerAddress,
    ServerConfig,
    config_from_mapping,
    load_config,
    parse_server_line,
)

THREE = {f"server.{i}": f"127.0.0.{i}:{2887 + i}:{3887 + i}" for i in (1, 2, 3)}


def ensemble(tmp_path: Path, myid: str | None = "1", **extra: str) -> ServerConfig:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    if myid is not None:
        (data / "myid").write_text(myid)
    return config_from_mapping({**THREE, "dataDir": str(data), **extra})


# -------------------------------------------------------------------------- server.N


@pytest.mark.parametrize("key, value, want", [
    ("server.1", "10.0.0.1:2888:3888", PeerAddress(1, "10.0.0.1", 2888, 3888)),
    ("server.2", "zk2.example.com:2888:3888:participant",
     PeerAddress(2, "zk2.example.com", 2888, 3888)),
    ("server.3", "zk3:2888:3888:observer", PeerAddress(3, "zk3", 2888, 3888, True)),
    ("server.4", "zk4:2888:3888:OBSERVER", PeerAddress(4, "zk4", 2888, 3888, True)),
    ("server.5", "zk5:2888:3888;2181", PeerAddress(5, "zk5", 2888, 3888, False, None, 2181)),
    ("server.6", "zk6:2888:3888;0.0.0.0:2181",
     PeerAddress(6, "zk6", 2888, 3888, False, "0.0.0.0", 2181)),
    ("server.7", "zk7:2888:3888:participant;127.0.0.1:2182",
     PeerAddress(7, "zk7", 2888, 3888, False, "127.0.0.1", 2182)),
    ("server.8", "zk8:2888:3888:observer;2183",
     PeerAddress(8, "zk8", 2888, 3888, True, None, 2183)),
    ("server.9", " zk9 : 2888 : 3888 ", PeerAddress(9, "zk9", 2888, 3888)),
    ("server.255", "h:1:65535", PeerAddress(255, "h", 1, 65535)),
    ("server.10", "[::1]:2888:3888:participant", PeerAddress(10, "::1", 2888, 3888)),
    ("server.11", "[fe80::1]:2888:3888:observer;2181",
     PeerAddress(11, "fe80::1", 2888, 3888, True, None, 2181)),
], ids=lambda v: v if isinstance(v, str) else "")
def test_server_lines(key: str, value: str, want: PeerAddress) -> None:
    assert parse_server_line(key, value) == want


@pytest.mark.parametrize("value, want", [
    ("zk1-net1:2888:3888|zk1-net2:2889:3889", PeerAddress(1, "zk1-net1", 2888, 3888)),
    ("zk1-net1:2888:3888|zk1-net2:2889:3889;2181",
     PeerAddress(1, "zk1-net1", 2888, 3888, False, None, 2181)),
    ("zk1-net1:2888:3888:observer|zk1-net2:2889:3889:observer",
     PeerAddress(1, "zk1-net1", 2888, 3888, True)),
])
def test_multi_address_uses_the_first(value: str, want: PeerAddress) -> None:
    assert parse_server_line("server.1", value) == want


def test_multi_address_role_on_the_last_address() -> None:
    got = parse_server_line("server.4", "zk4-net1:2888:3888|zk4-net2:2889:3889:observer")
    assert got.observer


def test_ipv6_without_role() -> None:
    assert parse_server_line("server.1", "[::1]:2888:3888") == PeerAddress(
        1, "::1", 2888, 3888)


@pytest.mark.parametrize("key, value, match", [
    ("server.x", "h:1:2", r"server\.x: the server id must be an integer"),
    ("server.", "h:1:2", "must be an integer"),
    ("server.0", "h:1:2", r"server\.0: server ids must be 1\.\.255"),
    ("server.256", "h:1:2", "1..255"),
    ("server.-1", "h:1:2", "1..255"),
    ("server.1", "h:2888", r"server\.1=h:2888: expected host:quorumPort:electionPort"),
    ("server.1", "h", "expected host:quorumPort:electionPort"),
    ("server.1", "", "expected host:quorumPort:electionPort"),
    ("server.1", "h:1:2:voter", r"\[:participant\|:observer\]"),
    ("server.1", "h:1:2:observer:extra", "expected host:quorumPort"),
    ("server.1", "h:abc:3888", "ports must be integers"),
    ("server.1", "h:2888:", "ports must be integers"),
    ("server.1", "h:0:3888", "port 0 out of range"),
    ("server.1", "h:2888:65536", "port 65536 out of range"),
    ("server.1", "h:-5:3888", "port -5 out of range"),
    ("server.1", "h:1:2;abc", "bad client address 'abc'"),
    ("server.1", "h:1:2;host:", "bad client address"),
])
def test_bad_server_lines(key: str, value: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as e:
        parse_server_line(key, value)
    assert key in str(e.value)


@pytest.mark.parametrize("client", ["70000", "h:65536", "-1"])
def test_client_port_out_of_range(client: str) -> None:
    with pytest.raises(ConfigError, match="out of range"):
        parse_server_line("server.1", f"h:1:2;{client}")


def test_server_lines_in_a_config(tmp_path: Path) -> None:
    cfg = ensemble(tmp_path, "2", **{"server.4": "127.0.0.4:2891:3891:observer;2184"})
    assert sorted(cfg.servers) == [1, 2, 3, 4]
    assert cfg.servers[2] == PeerAddress(2, "127.0.0.2", 2889, 3889)
    assert cfg.servers[4].observer and cfg.servers[4].client_port == 2184
    assert cfg.server_id == 2


def test_zookeeper_prefixed_and_other_server_keys_are_not_server_lines() -> None:
    cfg = config_from_mapping({"server.1x": "junk", "serverCnxnFactory": "x",
                               "server.": "y"})
    assert cfg.servers == {} and not cfg.replicated and cfg.server_id == 0


def test_bad_server_line_in_a_config_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"server\.2=127\.0\.0\.2:2888"):
        ensemble(tmp_path, **{"server.2": "127.0.0.2:2888"})


def test_load_config_with_server_lines(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "myid").write_text("3\n")
    (tmp_path / "zoo.cfg").write_text(
        "tickTime=2000\ninitLimit=7\nsyncLimit=3\ndataDir=data\nclientPort=2181\n"
        "server.1=zk1:2888:3888\nserver.2=zk2:2888:3888\nserver.3=zk3:2888:3888;2181\n")
    cfg = load_config(tmp_path / "zoo.cfg")
    assert cfg.server_id == 3  # myid read from the relative dataDir
    assert cfg.replicated
    assert (cfg.init_limit, cfg.sync_limit) == (7, 3)
    assert cfg.servers[3] == PeerAddress(3, "zk3", 2888, 3888, False, None, 2181)


# -------------------------------------------------------------------------- myid


@pytest.mark.parametrize("text, sid", [("1", 1), ("2\n", 2), ("  3  \n", 3)])
def test_myid(tmp_path: Path, text: str, sid: int) -> None:
    assert ensemble(tmp_path, text).server_id == sid


def test_missing_myid(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="myid") as e:
        ensemble(tmp_path, None)
    assert str(tmp_path / "data" / "myid") in str(e.value)


def test_missing_data_dir() -> None:
    with pytest.raises(ConfigError, match="dataDir"):
        config_from_mapping(THREE)


@pytest.mark.parametrize("text", ["", "one", "1.5", "0x1z", "1 2"])
def test_non_integer_myid(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="must hold an integer server id") as e:
        ensemble(tmp_path, text)
    assert repr(text.strip()) in str(e.value)


@pytest.mark.parametrize("text", ["4", "0", "-1", "256"])
def test_myid_not_in_the_server_list(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match=rf"myid {text} has no server\.{text} line"):
        ensemble(tmp_path, text)


def test_myid_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "data" / "myid").mkdir(parents=True)
    with pytest.raises(ConfigError, match="cannot read"):
        ensemble(tmp_path, None)


def test_standalone_does_not_need_myid(tmp_path: Path) -> None:
    cfg = config_from_mapping({"dataDir": str(tmp_path)})
    assert cfg.server_id == 0 and cfg.servers == {} and not cfg.replicated


# -------------------------------------------------------------------------- replicated


def test_three_servers_are_replicated(tmp_path: Path) -> None:
    assert ensemble(tmp_path).replicated
    assert ensemble(tmp_path, standaloneEnabled="true").replicated


def test_one_server_is_standalone(tmp_path: Path) -> None:
    (tmp_path / "myid").write_text("1")
    cfg = config_from_mapping({"server.1": "127.0.0.1:2888:3888", "dataDir": str(tmp_path)})
    assert cfg.server_id == 1 and not cfg.replicated


@pytest.mark.parametrize("key", ["standaloneEnabled", "zookeeper.standaloneEnabled"])
@pytest.mark.parametrize("value", ["false", "False", "no"])
def test_one_server_without_standalone_is_replicated(tmp_path: Path, key: str,
                                                     value: str) -> None:
    (tmp_path / "myid").write_text("1")
    cfg = config_from_mapping({"server.1": "127.0.0.1:2888:3888", "dataDir": str(tmp_path),
                               key: value})
    assert cfg.replicated


def test_standalone_enabled_false_without_servers_is_standalone() -> None:
    assert not config_from_mapping({"standaloneEnabled": "false"}).replicated


def test_replicated_property_of_a_plain_server_config() -> None:
    one = {1: PeerAddress(1, "h", 1, 2)}
    two = {1: PeerAddress(1, "h", 1, 2), 2: PeerAddress(2, "h", 3, 4, observer=True)}
    assert not ServerConfig().replicated
    assert not ServerConfig(servers=one).replicated
    assert ServerConfig(servers=one, raw={"standaloneEnabled": "false"}).replicated
    assert ServerConfig(servers=two).replicated


# -------------------------------------------------------------------------- limits


def test_limit_defaults(tmp_path: Path) -> None:
    cfg = ensemble(tmp_path)
    assert (cfg.init_limit, cfg.sync_limit) == (10, 5)


def test_limits(tmp_path: Path) -> None:
    cfg = ensemble(tmp_path, initLimit="20", syncLimit="2", tickTime="500")
    assert (cfg.init_limit, cfg.sync_limit, cfg.tick_time) == (20, 2, 500)
    cfg = ensemble(tmp_path, **{"zookeeper.initLimit": "3", "zookeeper.syncLimit": "4"})
    assert (cfg.init_limit, cfg.sync_limit) == (3, 4)


@pytest.mark.parametrize("key", ["initLimit", "syncLimit"])
@pytest.mark.parametrize("value", ["0", "-1"])
def test_non_positive_limits(tmp_path: Path, key: str, value: str) -> None:
    with pytest.raises(ConfigError, match="initLimit and syncLimit must be positive"):
        ensemble(tmp_path, **{key: value})


@pytest.mark.parametrize("key", ["initLimit", "syncLimit"])
def test_non_integer_limits(tmp_path: Path, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"{key} must be an integer, got 'ten'"):
        ensemble(tmp_path, **{key: "ten"})


def test_limits_of_a_standalone_server_are_not_checked() -> None:
    cfg = config_from_mapping({"initLimit": "0", "syncLimit": "0"})
    assert (cfg.init_limit, cfg.sync_limit) == (0, 0)
