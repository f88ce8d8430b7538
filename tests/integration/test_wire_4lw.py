"""Four-letter words (protocol reference §11, captures/4lw/*.txt).

The shapes are compared line by line with regexes derived from the captured answers of
Apache ZooKeeper 3.8.0.  A background session recreates the capture's state (the
``bg_session.py`` of the capture tools): ``/bg`` with two ephemerals and four watches.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration import wire
from tests.integration.wire import WireConn
from tests.support.servers import ServerProcess, server_class

CAPTURED = Path("/work/shared/reference/captures/4lw")
DATE = r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d [A-Za-z+\-:\d]+ \d{4}"
CLIENT = r" /127\.0\.0\.1:\d+\[\d+\]"
SRVR_TAIL = [
    r"Latency min/avg/max: \d+/\d+\.\d+/\d+",
    r"Received: \d+",
    r"Sent: \d+",
    r"Connections: \d+",
    r"Outstanding: \d+",
    r"Zxid: 0x[0-9a-f]+",
    r"Mode: standalone",
    r"Node count: \d+",
]
NOT_IN_WHITELIST = "{} is not executed because it is not in the whitelist.\n"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = server_class()(tmp_path_factory.mktemp("wire-4lw"), None)
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def bg_session(srv: Any) -> Iterator[WireConn]:
    """The capture's background session: 2 ephemerals, data/child/exist watches."""
    c = wire.open_session(srv.host, srv.port)
    assert c.create("/bg").err == 0
    assert c.create("/bg/eph1", b"e", flags=1).err == 0
    assert c.create("/bg/eph2", b"e", flags=1).err == 0
    assert c.get_data("/bg", watch=True).err == 0
    assert c.get_children("/bg", watch=True).err == 0
    assert c.exists("/bg/missing", watch=True).err == wire.NO_NODE
    assert c.get_data("/bg/eph1", watch=True).err == 0
    yield c
    c.close()


@pytest.fixture
def bg(bg_session: WireConn) -> WireConn:
    """The background session, pinged so that it cannot expire during the module."""
    assert bg_session.ping().err == 0
    return bg_session


def word(s: Any, w: bytes) -> str:
    return wire.four_letter(s.host, s.port, w).decode()


def lines_of(text: str) -> list[str]:
    assert text.endswith("\n"), f"answer must end with a newline: {text[-40:]!r}"
    return text[:-1].split("\n")


def match_all(lines: list[str], patterns: list[str], what: str) -> list[re.Match[str]]:
    assert len(lines) == len(patterns), f"{what}: {len(lines)} lines, expected " \
                                        f"{len(patterns)}:\n" + "\n".join(lines)
    out = []
    for line, pat in zip(lines, patterns, strict=True):
        m = re.fullmatch(pat, line)
        assert m, f"{what}: line {line!r} does not match {pat!r}"
        out.append(m)
    return out


def captured(name: str) -> str:
    return (CAPTURED / f"{name}.txt").read_text()


def test_captured_texts_match_the_patterns() -> None:
    """The patterns below are derived from the captures; keep them honest."""
    srvr = lines_of(captured("srvr"))
    match_all(srvr, [r"Zookeeper version: .+"] + SRVR_TAIL, "captured srvr")
    stat = lines_of(captured("stat"))
    match_all(stat, [r"Zookeeper version: .+", "Clients:",
                     CLIENT + r"\(queued=\d+,recved=\d+,sent=\d+\)",
                     CLIENT + r"\(queued=\d+,recved=\d+,sent=\d+\)", ""] + SRVR_TAIL,
              "captured stat")
    for line in lines_of(captured("cons"))[:-1]:
        assert re.fullmatch(CONS_LINE, line), line
    assert captured("ruok") == "imok" and captured("isro") == "rw"


def test_ruok_isro_gtmk(srv: Any) -> None:
    assert word(srv, b"ruok") == "imok"
    assert word(srv, b"ruok\n") == "imok"  # trailing bytes (echo's newline) are ignored
    assert word(srv, b"isro") == "rw"
    assert word(srv, b"gtmk") == "306"


def test_stmk_sets_and_echoes_the_trace_mask(server: Any) -> None:
    assert word(server, b"stmk" + struct.pack(">q", 0x100)) == "256"
    assert word(server, b"gtmk") == "256"
    assert word(server, b"stmk" + struct.pack(">q", 306)) == "306"
    assert word(server, b"gtmk") == "306"


def test_srvr(srv: Any, bg: WireConn) -> None:
    zxid = bg.ping().zxid
    first = match_all(lines_of(word(srv, b"srvr")), [r"Zookeeper version: (.+)"] + SRVR_TAIL,
                      "srvr")
    text = word(srv, b"srvr")
    second = lines_of(text)
    match_all(second, [r"Zookeeper version: .+"] + SRVR_TAIL, "srvr")
    assert f"\nZxid: 0x{zxid:x}\n" in text
    assert "\nConnections: 2\n" in text  # the background session and this one
    assert "\nOutstanding: 0\n" in text
    assert "\nNode count: 8\n" in text  # 7 real nodes + the root's "" alias

    def num(lines: list[str], key: str) -> int:
        return int(next(x for x in lines if x.startswith(key)).split(": ")[1])

    firsts = [m.group(0) for m in first]
    # the words themselves are counted: one packet in and one out per srvr
    assert num(second, "Received") == num(firsts, "Received") + 1
    assert num(second, "Sent") == num(firsts, "Sent") + 1


def test_stat(srv: Any, bg: WireConn) -> None:
    lines = lines_of(word(srv, b"stat"))
    pats = [r"Zookeeper version: .+", "Clients:"]
    pats += [CLIENT + r"\(queued=\d+,recved=\d+,sent=\d+\)"] * (len(lines) - 2 - 1 - 8)
    pats += [""] + SRVR_TAIL
    match_all(lines, pats, "stat")
    clients = lines[2:-9]
    assert len(clients) == 2, clients
    # the 4lw connection itself: [0], one packet in, nothing sent yet
    assert any(re.fullmatch(CLIENT + r"\(queued=0,recved=1,sent=0\)", x) for x in clients)


CONS_LINE = (CLIENT + r"\(queued=\d+,recved=\d+,sent=\d+"
             r"(,sid=0x[0-9a-f]+,lop=[A-Z]+,est=\d+,to=\d+(,lcxid=0x[0-9a-f]+)?,"
             r"lzxid=0x[0-9a-f]+,lresp=\d+,llat=\d+,minlat=\d+,avglat=\d+,maxlat=\d+)?\)")


def test_cons(srv: Any, bg: WireConn) -> None:
    bg_zxid = bg.ping().zxid
    lines = lines_of(word(srv, b"cons"))
    assert lines[-1] == "", "cons ends with an empty line"
    for line in lines[:-1]:
        assert re.fullmatch(CONS_LINE, line), f"cons line {line!r}"
    mine = [x for x in lines if f",sid=0x{bg.session_id:x}," in x]
    assert len(mine) == 1, lines
    assert ",lop=PING," in mine[0] and ",to=30000," in mine[0]
    assert f",lzxid=0x{bg_zxid:x}," in mine[0]
    assert ",lcxid=0x" in mine[0]
    assert any(re.fullmatch(CLIENT + r"\(queued=0,recved=1,sent=0\)", x) for x in lines)


def test_watch_words(srv: Any, bg: WireConn) -> None:
    sid = f"0x{bg.session_id:x}"
    # data-watch table only: /bg (getData), /bg/missing (exists), /bg/eph1 (getData)
    assert word(srv, b"wchs") == "1 connections watching 3 paths\nTotal watches:3\n"
    wchc = lines_of(word(srv, b"wchc"))
    assert wchc[0] == sid and wchc[-1] == ""
    assert sorted(wchc[1:-1]) == sorted(["\t/bg", "\t/bg/missing", "\t/bg/eph1"])
    wchp = lines_of(word(srv, b"wchp"))
    assert wchp[-1] == "" and len(wchp) == 7
    pairs = {wchp[i]: wchp[i + 1] for i in range(0, 6, 2)}
    assert pairs == {"/bg": "\t" + sid, "/bg/missing": "\t" + sid, "/bg/eph1": "\t" + sid}


def test_dump(srv: Any, bg: WireConn) -> None:
    sid = f"0x{bg.session_id:x}"
    lines = lines_of(word(srv, b"dump"))
    assert lines[0] == "SessionTracker dump:"
    assert re.fullmatch(r"Session Sets \(\d+\)/\(\d+\):", lines[1]), lines[1]
    i = 2
    sessions = []
    while lines[i] != "ephemeral nodes dump:":
        if not lines[i].startswith("\t"):
            assert re.fullmatch(r"\d+ expire at " + DATE + ":", lines[i]), lines[i]
        else:
            assert re.fullmatch(r"\t0x[0-9a-f]+", lines[i]), lines[i]
            sessions.append(lines[i][1:])
        i += 1
    assert sessions == [sid]
    assert lines[i + 1] == "Sessions with Ephemerals (1):"
    assert lines[i + 2] == sid + ":"
    assert sorted(lines[i + 3:i + 5]) == ["\t/bg/eph1", "\t/bg/eph2"]
    assert lines[i + 5] == "Connections dump:"
    assert re.fullmatch(r"Connections Sets \(\d+\)/\(\d+\):", lines[i + 6]), lines[i + 6]
    conns = []
    for line in lines[i + 7:]:
        if line.startswith("\t"):
            m = re.fullmatch(r"\tip: /127\.0\.0\.1:\d+ sessionId: (0x[0-9a-f]+)", line)
            assert m, line
            conns.append(m.group(1))
        else:
            assert re.fullmatch(r"\d+ expire at " + DATE + ":", line), line
    assert sid in conns


def test_mntr(srv: Any, bg: WireConn) -> None:
    lines = lines_of(word(srv, b"mntr"))
    kv = {}
    for line in lines:
        m = re.fullmatch(r"(zk_[A-Za-z0-9_]+)\t(.+)", line)
        assert m, f"mntr line {line!r}"
        assert m.group(1) not in kv, f"duplicate key {m.group(1)}"
        kv[m.group(1)] = m.group(2)
    assert lines[0].startswith("zk_version\t") and lines[1] == "zk_server_state\tstandalone"
    version = word(srv, b"srvr").split("\n")[0].split(": ", 1)[1]
    assert kv["zk_version"] == version
    for key in ("zk_avg_latency", "zk_connection_drop_probability"):
        assert re.fullmatch(r"\d+\.\d+", kv[key]), (key, kv[key])
    for key in ("zk_min_latency", "zk_max_latency", "zk_packets_received", "zk_packets_sent",
                "zk_uptime", "zk_open_file_descriptor_count", "zk_max_file_descriptor_count",
                "zk_local_sessions", "zk_outstanding_tls_handshake", "zk_auth_failed_count",
                "zk_non_mtls_remote_conn_count", "zk_non_mtls_local_conn_count"):
        assert re.fullmatch(r"-?\d+", kv[key]), (key, kv[key])
    for key in ("zk_last_client_response_size", "zk_min_client_response_size",
                "zk_max_client_response_size"):
        assert re.fullmatch(r"-?\d+", kv[key]), (key, kv[key])
    assert kv["zk_ephemerals_count"] == "2"
    assert kv["zk_znode_count"] == "8"
    assert kv["zk_watch_count"] == "4"  # 3 data + 1 child watch entries
    assert kv["zk_num_alive_connections"] == "2"
    assert kv["zk_outstanding_requests"] == "0"
    assert kv["zk_global_sessions"] == "1"
    # sum of path + data lengths incl. the "" alias: 44 on a fresh server, + /bg (3)
    # + /bg/eph1 (8 + 1) + /bg/eph2 (8 + 1)
    assert kv["zk_approximate_data_size"] == "65"


def test_conf(srv: Any) -> None:
    lines = lines_of(word(srv, b"conf"))
    keys = [x.split("=", 1)[0] for x in lines]
    assert keys == ["clientPort", "secureClientPort", "dataDir", "dataDirSize", "dataLogDir",
                    "dataLogSize", "tickTime", "maxClientCnxns", "minSessionTimeout",
                    "maxSessionTimeout", "clientPortListenBacklog", "serverId"]
    kv = dict(x.split("=", 1) for x in lines)
    assert kv["clientPort"] == str(srv.port)
    assert kv["secureClientPort"] == "-1"
    assert kv["tickTime"] == "2000"
    assert kv["maxClientCnxns"] == "0"  # the test config sets 0
    assert (kv["minSessionTimeout"], kv["maxSessionTimeout"]) == ("4000", "40000")
    assert kv["clientPortListenBacklog"] == "-1" and kv["serverId"] == "0"
    # ZooKeeper appends its snapshot-format directory ("/version-2"); only the prefix is
    # the configured value
    assert kv["dataDir"].startswith(str(srv.workdir / "data"))
    assert kv["dataLogDir"].startswith(str(srv.workdir / "data"))
    assert kv["dataDirSize"].isdigit() and kv["dataLogSize"].isdigit()
    # compare with the capture's shape
    assert [x.split("=", 1)[0] for x in lines_of(captured("conf"))] == keys


def test_dirs(srv: Any) -> None:
    match_all(lines_of(word(srv, b"dirs")), [r"datadir_size: \d+", r"logdir_size: \d+"], "dirs")


def test_envi(srv: Any) -> None:
    lines = lines_of(word(srv, b"envi"))
    assert lines[0] == "Environment:"
    keys = []
    for line in lines[1:]:
        m = re.fullmatch(r"([a-z.]+)=(.*)", line)
        assert m, f"envi line {line!r}"
        keys.append(m.group(1))
    want = [x.split("=", 1)[0] for x in lines_of(captured("envi"))[1:]]
    assert keys == want
    kv = dict(x.split("=", 1) for x in lines[1:])
    version = word(srv, b"srvr").split("\n")[0].split(": ", 1)[1]
    assert kv["zookeeper.version"] == version
    for key in ("os.memory.free", "os.memory.max", "os.memory.total"):
        assert re.fullmatch(r"\d+MB", kv[key]), (key, kv[key])


def test_crst_and_srst(server: Any) -> None:
    with wire.open_session(server.host, server.port) as c:
        for _ in range(3):
            c.get_data("/zookeeper")
        assert word(server, b"crst") == "Connection stats reset.\n"
        cons = lines_of(word(server, b"cons"))
        line = next(x for x in cons if f"sid=0x{c.session_id:x}" in x)
        assert "recved=0,sent=0" in line and ",lop=NA," in line
        assert word(server, b"srst") == "Server stats reset.\n"
        srvr = lines_of(word(server, b"srvr"))
        assert srvr[1] == "Latency min/avg/max: 0/0.0/0"
        assert int(srvr[2].split(": ")[1]) <= 1  # only the srvr itself
        c.close_session()


def test_unknown_word_and_word_after_handshake_close_silently(srv: Any) -> None:
    with WireConn(srv.host, srv.port) as c:
        c.send_raw(b"abcd")
        c.expect_closed()
    with wire.open_session(srv.host, srv.port) as c:
        c.send_raw(b"srvr")
        c.expect_closed()
    assert word(srv, b"ruok") == "imok"


def test_whitelist(server_factory: Any) -> None:
    only = server_factory(cfg={"4lw.commands.whitelist": "srvr"})
    assert word(only, b"ruok") == NOT_IN_WHITELIST.format("ruok")
    for w in ("mntr", "stat", "cons", "isro", "envi", "wchs", "dump", "conf", "crst"):
        assert word(only, w.encode()) == NOT_IN_WHITELIST.format(w)
    assert "Mode: standalone" in word(only, b"srvr")
    two = server_factory(cfg={"4lw.commands.whitelist": "ruok , mntr"})
    assert word(two, b"ruok") == "imok"
    assert word(two, b"mntr").startswith("zk_version\t")
    assert "Mode: standalone" in word(two, b"srvr")  # srvr is always enabled
    assert word(two, b"stat") == NOT_IN_WHITELIST.format("stat")
