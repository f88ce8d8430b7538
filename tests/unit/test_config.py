"""zoo.cfg parsing: a stock file runs unchanged, ZooKeeper's defaults and key spellings."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kernel.config import (
    ALL_FOUR_LETTER_WORDS,
    ConfigError,
    ServerConfig,
    config_from_mapping,
    load_config,
    parse_zoo_cfg,
)
from kernel.protocol import DEFAULT_JUTE_MAXBUFFER

STOCK = Path("/etc/zookeeper/conf_example/zoo.cfg")

TYPICAL = """\
# The number of milliseconds of each tick
tickTime=2000
# The number of ticks that the initial
# synchronization phase can take
initLimit=10
syncLimit=5
dataDir=/tmp/zookeeper
clientPort=2181
#maxClientCnxns=60
#autopurge.snapRetainCount=3
#autopurge.purgeInterval=1
"""


@pytest.fixture
def stock_cfg(tmp_path: Path) -> Path:
    dst = tmp_path / "zoo.cfg"
    if STOCK.exists():
        shutil.copy(STOCK, dst)
    else:
        dst.write_text(TYPICAL)
    return dst


def test_stock_zoo_cfg(stock_cfg: Path) -> None:
    cfg = load_config(stock_cfg)
    assert cfg.tick_time == 2000
    assert cfg.client_port == 2181
    assert cfg.data_dir == Path("/tmp/zookeeper")
    assert cfg.data_log_dir is None
    assert (cfg.min_session_timeout, cfg.max_session_timeout) == (4000, 40000)
    assert cfg.max_client_cnxns == 60
    assert cfg.four_letter_words == frozenset({"srvr"})
    assert cfg.jute_maxbuffer == DEFAULT_JUTE_MAXBUFFER
    assert cfg.extended_types is False and cfg.skip_acl is False
    assert cfg.reconfig_enabled is False and cfg.digest_enabled is True
    assert cfg.transports == ("jute",)
    assert cfg.source == stock_cfg
    assert cfg.raw["initLimit"] == "10" and cfg.raw["syncLimit"] == "5"
    assert cfg.get("initLimit") == "10"
    assert cfg.get("nonexistent", "dflt") == "dflt"


def test_parse_comments_blank_lines_whitespace_last_wins() -> None:
    raw = parse_zoo_cfg("# comment\n\n  tickTime = 1000  \nclientPort=1\nclientPort=2\n"
                        "   # indented comment\nurl=a=b\n")
    assert raw == {"tickTime": "1000", "clientPort": "2", "url": "a=b"}


def test_line_without_equals_is_an_error_naming_the_line() -> None:
    with pytest.raises(ConfigError, match="line 2"):
        parse_zoo_cfg("tickTime=2000\nthis is not a setting\n")


@pytest.mark.parametrize("tick, lo, hi", [(2000, 4000, 40000), (3000, 6000, 60000),
                                          (500, 1000, 10000)])
def test_session_timeout_defaults_follow_tick_time(tick: int, lo: int, hi: int) -> None:
    cfg = config_from_mapping({"tickTime": str(tick)})
    assert (cfg.min_session_timeout, cfg.max_session_timeout) == (lo, hi)
    assert cfg.clamp_timeout(1) == lo
    assert cfg.clamp_timeout(10**9) == hi
    assert cfg.clamp_timeout(lo + 1) == lo + 1


def test_code_defaults_without_tick_time() -> None:
    cfg = config_from_mapping({})
    assert cfg.tick_time == 3000
    assert (cfg.min_session_timeout, cfg.max_session_timeout) == (6000, 60000)
    assert ServerConfig().min_session_timeout == 6000
    assert ServerConfig(tick_time=100).max_session_timeout == 2000


def test_explicit_session_timeouts() -> None:
    cfg = config_from_mapping({"tickTime": "2000", "minSessionTimeout": "1000",
                               "maxSessionTimeout": "90000"})
    assert (cfg.min_session_timeout, cfg.max_session_timeout) == (1000, 90000)
    only_max = config_from_mapping({"tickTime": "2000", "maxSessionTimeout": "5000"})
    assert (only_max.min_session_timeout, only_max.max_session_timeout) == (4000, 5000)


def test_min_above_max_is_an_error() -> None:
    with pytest.raises(ConfigError, match="minSessionTimeout"):
        config_from_mapping({"tickTime": "2000", "minSessionTimeout": "50000"})


# ------------------------------------------------------------------ 4lw whitelist


@pytest.mark.parametrize("value, expected", [
    ("*", ALL_FOUR_LETTER_WORDS),
    ("ruok", {"ruok", "srvr"}),
    ("ruok, stat ,mntr", {"ruok", "stat", "mntr", "srvr"}),
    ("srvr", {"srvr"}),
    ("", {"srvr"}),
    (" , ,", {"srvr"}),
    ("stat, *", ALL_FOUR_LETTER_WORDS),
])
def test_whitelist(value: str, expected: set[str]) -> None:
    cfg = config_from_mapping({"4lw.commands.whitelist": value})
    assert cfg.four_letter_words == frozenset(expected)
    assert "srvr" in cfg.four_letter_words  # always on


def test_whitelist_unset_is_srvr_only() -> None:
    assert config_from_mapping({}).four_letter_words == frozenset({"srvr"})


def test_read_only_mode_enables_isro() -> None:
    cfg = config_from_mapping({"readonlymode.enabled": "true"})
    assert cfg.four_letter_words == frozenset({"srvr", "isro"})
    cfg = config_from_mapping({"zookeeper.readonlymode.enabled": "true",
                               "4lw.commands.whitelist": "ruok"})
    assert cfg.four_letter_words == frozenset({"srvr", "isro", "ruok"})


def test_all_known_words() -> None:
    assert frozenset({"conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "hash", "isro",
                      "mntr", "ruok", "srst", "srvr", "stat", "stmk", "wchc", "wchp",
                      "wchs"}) == ALL_FOUR_LETTER_WORDS


# ----------------------------------------------------------- zookeeper.-prefixed keys


@pytest.mark.parametrize("key", ["extendedTypesEnabled", "zookeeper.extendedTypesEnabled"])
def test_extended_types_either_spelling(key: str) -> None:
    assert config_from_mapping({key: "true"}).extended_types is True
    assert config_from_mapping({key: "false"}).extended_types is False


def test_prefixed_keys() -> None:
    cfg = config_from_mapping({
        "zookeeper.4lw.commands.whitelist": "ruok,conf",
        "zookeeper.skipACL": "yes",
        "zookeeper.DigestAuthenticationProvider.superDigest": "super:abc=",
        "zookeeper.DigestAuthenticationProvider.enabled": "false",
        "zookeeper.jute.maxbuffer": "4096",
        "zookeeper.reconfigEnabled": "true",
        "zookeeper.znode.container.checkIntervalMs": "1000",
        "zookeeper.znode.container.maxPerMinute": "5",
        "zookeeper.znode.container.maxNeverUsedIntervalMs": "30000",
        "zookeeper.myPluginKey": "42",
    })
    assert cfg.four_letter_words == frozenset({"ruok", "conf", "srvr"})
    assert cfg.skip_acl is True
    assert cfg.super_digest == "super:abc="
    assert cfg.digest_enabled is False
    assert cfg.jute_maxbuffer == 4096
    assert cfg.reconfig_enabled is True
    assert (cfg.container_check_interval_ms, cfg.container_max_per_minute,
            cfg.container_max_never_used_ms) == (1000, 5, 30000)
    # Plugins read their own keys with or without the prefix.
    assert cfg.get("myPluginKey") == "42"
    assert cfg.get("zookeeper.myPluginKey") == "42"


def test_unprefixed_spellings() -> None:
    cfg = config_from_mapping({"skipACL": "yes", "superDigest": "super:x",
                               "jute.maxbuffer": "0x10000"})
    assert cfg.skip_acl is True and cfg.super_digest == "super:x"
    assert cfg.jute_maxbuffer == 0x10000


def test_kernel_keys() -> None:
    cfg = config_from_mapping({"kernel.transports": "jute, grpc", "kernel.storage": " lmdb ",
                               "kernel.tracing": "true", "clientPortAddress": "127.0.0.1"})
    assert cfg.transports == ("jute", "grpc")
    assert cfg.storage == "lmdb"
    assert cfg.tracing is True
    assert cfg.client_port_address == "127.0.0.1"
    assert config_from_mapping({"kernel.transports": " , "}).transports == ("jute",)


# -------------------------------------------------------------------------- errors


@pytest.mark.parametrize("key, value", [
    ("tickTime", "abc"), ("tickTime", "2000ms"), ("clientPort", "21 81"),
    ("maxClientCnxns", "many"), ("minSessionTimeout", "1.5"), ("jute.maxbuffer", "1M"),
    ("zookeeper.jute.maxbuffer", "0xZZ"), ("znode.container.checkIntervalMs", "soon"),
])
def test_bad_int_is_a_readable_config_error(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as ei:
        config_from_mapping({key: value})
    msg = str(ei.value)
    assert key.removeprefix("zookeeper.") in msg
    assert repr(value) in msg or value in msg
    assert "integer" in msg


@pytest.mark.parametrize("cfg, words", [
    ({"tickTime": "0"}, "tickTime"),
    ({"tickTime": "-5"}, "tickTime"),
    ({"clientPort": "70000"}, "clientPort"),
    ({"clientPort": "-1"}, "clientPort"),
    ({"jute.maxbuffer": "0"}, "jute.maxbuffer"),
])
def test_out_of_range_values(cfg: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        config_from_mapping(cfg)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.cfg")


def test_empty_value_uses_the_default() -> None:
    cfg = config_from_mapping({"tickTime": "", "clientPort": ""})
    assert (cfg.tick_time, cfg.client_port) == (3000, 2181)
