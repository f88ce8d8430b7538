"""Four-letter words against a real server, with kazoo sessions providing the state
they report (client-protocol.md §11; captures in /work/shared/reference/captures/4lw/).
"""

from __future__ import annotations

import re
import socket
import struct

from kazoo.protocol.serialization import Connect

from tests.integration import kazoo_helpers as kh
from tests.support.servers import four_letter_word


def flw(srv, word):
    return four_letter_word(srv.port, word)


SRVR_RE = re.compile(
    r"Zookeeper version: (?P<version>[^\n]+)\n"
    r"Latency min/avg/max: (?P<lat>\d+/\d+(?:\.\d+)?/\d+)\n"
    r"Received: (?P<received>\d+)\n"
    r"Sent: (?P<sent>\d+)\n"
    r"Connections: (?P<connections>\d+)\n"
    r"Outstanding: (?P<outstanding>\d+)\n"
    r"Zxid: 0x(?P<zxid>[0-9a-f]+)\n"
    r"Mode: (?P<mode>\w+)\n"
    r"Node count: (?P<nodes>\d+)\n"
)


def srvr(srv):
    text = flw(srv, "srvr")
    m = SRVR_RE.fullmatch(text)
    assert m, text
    return m


def mntr(srv):
    text = flw(srv, "mntr")
    lines = text.splitlines()
    assert text.endswith("\n")
    pairs = [line.split("\t") for line in lines]
    assert all(len(p) == 2 for p in pairs), text
    assert [p[0] for p in pairs[:2]] == ["zk_version", "zk_server_state"]
    return dict(pairs)


def test_ruok_and_isro(srv):
    assert flw(srv, "ruok") == "imok"
    assert flw(srv, "isro") == "rw"


def test_srvr_on_fresh_server(server):
    m = srvr(server)
    assert m["mode"] == "standalone"
    assert m["zxid"] == "0"
    assert m["nodes"] == "5"  # 4 real nodes + ZK's "" alias of the root
    assert m["outstanding"] == "0"
    assert m["connections"] == "1"  # the srvr connection itself


def test_srvr_tracks_zxid_nodes_and_connections(server, clients):
    zk = clients.new(server)
    zk.create("/a", b"")
    zk.create("/a/b", b"")
    m = srvr(server)
    assert int(m["zxid"], 16) == zk.last_zxid
    assert m["nodes"] == "7"
    assert m["connections"] == "2"
    zk.delete("/a/b")
    m = srvr(server)
    assert m["nodes"] == "6"
    assert int(m["zxid"], 16) == zk.last_zxid


def test_stat_lists_clients(server, clients):
    zk = clients.new(server)
    zk.get("/")
    text = flw(server, "stat")
    version_line, rest = text.split("\n", 1)
    assert version_line.startswith("Zookeeper version: ")
    assert rest.startswith("Clients:\n")
    client_block, tail = rest[len("Clients:\n"):].split("\n\n", 1)
    lines = client_block.split("\n")
    assert len(lines) == 2
    assert all(re.fullmatch(r" /127\.0\.0\.1:\d+\[\d+\]\(queued=\d+,recved=\d+,sent=\d+\)", x)
               for x in lines), lines
    assert SRVR_RE.fullmatch(version_line + "\n" + tail)


def test_mntr(server, clients):
    fresh = mntr(server)
    assert fresh["zk_server_state"] == "standalone"
    assert fresh["zk_version"] == srvr(server)["version"]
    assert fresh["zk_znode_count"] == "5"
    assert fresh["zk_approximate_data_size"] == "44"
    assert fresh["zk_ephemerals_count"] == "0"
    assert fresh["zk_watch_count"] == "0"
    assert fresh["zk_global_sessions"] == "0"
    assert fresh["zk_outstanding_requests"] == "0"
    for key in ("zk_avg_latency", "zk_min_latency", "zk_max_latency", "zk_packets_received",
                "zk_packets_sent", "zk_num_alive_connections", "zk_uptime",
                "zk_local_sessions", "zk_open_file_descriptor_count",
                "zk_max_file_descriptor_count", "zk_connection_drop_probability",
                "zk_last_client_response_size", "zk_min_client_response_size",
                "zk_max_client_response_size", "zk_outstanding_tls_handshake",
                "zk_auth_failed_count"):
        assert key in fresh, key
    assert float(fresh["zk_avg_latency"]) >= 0

    zk = clients.new(server)
    zk2 = clients.new(server)
    zk.create("/e1", b"12345", ephemeral=True)
    zk.create("/p", b"")
    zk2.create("/p/e2", b"", ephemeral=True)
    zk.get("/p", watch=kh.Watcher())
    zk.get_children("/p", watch=kh.Watcher())
    zk2.exists("/nothing", watch=kh.Watcher())
    m = mntr(server)
    assert m["zk_znode_count"] == "8"
    assert m["zk_ephemerals_count"] == "2"
    assert m["zk_global_sessions"] == "2"
    assert m["zk_watch_count"] == "3"  # data + child watch entries
    assert m["zk_num_alive_connections"] == "3"  # two sessions + this mntr connection
    # path lengths + data lengths: 44 + len("/e1")+5 + len("/p") + len("/p/e2")
    assert m["zk_approximate_data_size"] == str(44 + 3 + 5 + 2 + 5)
    assert int(m["zk_znode_count"]) == int(srvr(server)["nodes"])


def test_whitelist_only_srvr(server_factory):
    srv = server_factory(cfg={"4lw.commands.whitelist": "srvr"})
    assert flw(srv, "ruok") == "ruok is not executed because it is not in the whitelist.\n"
    assert flw(srv, "mntr") == "mntr is not executed because it is not in the whitelist.\n"
    assert flw(srv, "isro") == "isro is not executed because it is not in the whitelist.\n"
    assert srvr(srv)["mode"] == "standalone"


def test_whitelist_list_with_spaces_and_srvr_always_on(server_factory):
    srv = server_factory(cfg={"4lw.commands.whitelist": "ruok, mntr"})
    assert flw(srv, "ruok") == "imok"
    assert mntr(srv)["zk_server_state"] == "standalone"
    assert flw(srv, "conf") == "conf is not executed because it is not in the whitelist.\n"
    assert flw(srv, "stat") == "stat is not executed because it is not in the whitelist.\n"
    assert srvr(srv)["mode"] == "standalone"  # srvr is always enabled


CONS_SESSION_RE = (r" /127\.0\.0\.1:\d+\[\d+\]\(queued=\d+,recved=(?P<recved>\d+),"
                   r"sent=(?P<sent>\d+),sid=0x{sid},lop=(?P<lop>\w+),est=\d+,to=(?P<to>\d+),"
                   r"(?:lcxid=0x[0-9a-f]+,)?lzxid=0x[0-9a-f]+,lresp=\d+,llat=\d+,minlat=\d+,"
                   r"avglat=\d+,maxlat=\d+\)")


def cons_line(srv, sid):
    text = flw(srv, "cons")
    assert text.endswith("\n\n"), text
    lines = text[:-2].split("\n")
    mine = [x for x in lines if f"sid=0x{sid:x}," in x]
    assert len(mine) == 1, text
    # the cons connection itself is listed without session fields
    assert any(re.fullmatch(r" /127\.0\.0\.1:\d+\[\d+\]\(queued=\d+,recved=\d+,sent=\d+\)", x)
               for x in lines), text
    m = re.fullmatch(CONS_SESSION_RE.format(sid=f"{sid:x}"), mine[0])
    assert m, mine[0]
    return m


def test_cons_and_crst(server, clients):
    zk = clients.new(server, timeout=40.0)  # long timeout: no pings during the test
    sid = zk.client_id[0]
    zk.get("/zookeeper")
    m = cons_line(server, sid)
    assert m["to"] == "40000"
    assert m["lop"] == "GETD"
    assert int(m["recved"]) >= 2 and int(m["sent"]) >= 2
    zk.exists("/zookeeper")
    assert cons_line(server, sid)["lop"] == "EXIS"
    assert flw(server, "crst") == "Connection stats reset.\n"
    m = cons_line(server, sid)
    assert (m["recved"], m["sent"], m["lop"]) == ("0", "0", "NA")


def test_srst_resets_server_stats(server, clients):
    zk = clients.new(server, timeout=40.0)
    for _ in range(5):
        zk.get("/")
    assert int(srvr(server)["received"]) >= 6
    assert flw(server, "srst") == "Server stats reset.\n"
    m = srvr(server)
    assert m["lat"] == "0/0.0/0"
    assert int(m["received"]) <= 2
    assert int(m["sent"]) <= 2


def parse_watch_listing(text):
    """wchc / wchp: blocks of 'key' followed by '\\t<value>' lines; ends with '\\n'."""
    assert text.endswith("\n"), text
    out = {}
    key = None
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("\t"):
            out[key].add(line[1:])
        else:
            key = line
            out[key] = set()
    return out


def test_watch_words(server, clients):
    assert flw(server, "wchs") == "0 connections watching 0 paths\nTotal watches:0\n"
    a = clients.new(server)
    b = clients.new(server)
    sa, sb = (f"0x{c.client_id[0]:x}" for c in (a, b))
    a.create("/w1", b"")
    a.get("/w1", watch=kh.Watcher())
    a.exists("/w2", watch=kh.Watcher())
    a.get_children("/", watch=kh.Watcher())  # child watches are not reported
    b.get("/w1", watch=kh.Watcher())
    assert flw(server, "wchs") == "2 connections watching 2 paths\nTotal watches:3\n"
    assert parse_watch_listing(flw(server, "wchc")) == {sa: {"/w1", "/w2"}, sb: {"/w1"}}
    assert parse_watch_listing(flw(server, "wchp")) == {"/w1": {sa, sb}, "/w2": {sa}}
    # a fired watch is gone
    b.set("/w1", b"x")
    a.sync("/")
    b.sync("/")
    # (3.8.0 keeps counting a connection whose last watch fired, so C is not checked)
    assert re.fullmatch(r"[12] connections watching 1 paths\nTotal watches:1\n",
                        flw(server, "wchs"))
    assert parse_watch_listing(flw(server, "wchp")) == {"/w2": {sa}}


def test_conf(srv):
    text = flw(srv, "conf")
    pairs = [line.split("=", 1) for line in text.splitlines()]
    keys = [k for k, _ in pairs]
    assert keys == ["clientPort", "secureClientPort", "dataDir", "dataDirSize", "dataLogDir",
                    "dataLogSize", "tickTime", "maxClientCnxns", "minSessionTimeout",
                    "maxSessionTimeout", "clientPortListenBacklog", "serverId"]
    conf = dict(pairs)
    assert conf["clientPort"] == str(srv.port)
    assert conf["secureClientPort"] == "-1"
    # ZooKeeper names its snapshot directory, zkernel its LMDB environment.
    sub = "version-2" if kh.IS_ZOOKEEPER else "zkernel-lmdb"
    assert conf["dataDir"] == str(srv.workdir / "data" / sub)
    assert conf["tickTime"] == "2000"
    assert conf["maxClientCnxns"] == "0"
    assert (conf["minSessionTimeout"], conf["maxSessionTimeout"]) == ("4000", "40000")
    assert conf["serverId"] == "0"
    assert int(conf["dataDirSize"]) >= 0 and int(conf["dataLogSize"]) >= 0


def test_conf_reflects_tick_time_and_session_bounds(server_factory):
    srv = server_factory(cfg={"tickTime": 500})
    conf = dict(line.split("=", 1) for line in flw(srv, "conf").splitlines())
    assert (conf["tickTime"], conf["minSessionTimeout"], conf["maxSessionTimeout"]) == (
        "500", "1000", "10000")
    srv2 = server_factory(cfg={"tickTime": 500, "minSessionTimeout": 3000,
                               "maxSessionTimeout": 6000})
    conf = dict(line.split("=", 1) for line in flw(srv2, "conf").splitlines())
    assert (conf["minSessionTimeout"], conf["maxSessionTimeout"]) == ("3000", "6000")


ENVI_KEYS = ["zookeeper.version", "host.name", "java.version", "java.vendor", "java.home",
             "java.class.path", "java.library.path", "java.io.tmpdir", "java.compiler",
             "os.name", "os.arch", "os.version", "user.name", "user.home", "user.dir",
             "os.memory.free", "os.memory.max", "os.memory.total"]


def test_envi(srv):
    text = flw(srv, "envi")
    assert text.startswith("Environment:\n")
    pairs = dict(line.split("=", 1) for line in text.splitlines()[1:])
    assert list(pairs) == ENVI_KEYS
    assert pairs["zookeeper.version"] == srvr(srv)["version"]
    for k in ("os.memory.free", "os.memory.max", "os.memory.total"):
        assert re.fullmatch(r"\d+MB", pairs[k]), (k, pairs[k])


def test_dirs(srv):
    assert re.fullmatch(r"datadir_size: \d+\nlogdir_size: \d+\n", flw(srv, "dirs"))


def test_dump(server, clients):
    zk = clients.new(server)
    other = clients.new(server)
    sid = f"0x{zk.client_id[0]:x}"
    osid = f"0x{other.client_id[0]:x}"
    zk.create("/d", b"")
    zk.create("/d/e1", b"", ephemeral=True)
    zk.create("/d/e2", b"", ephemeral=True)
    text = flw(server, "dump")
    assert text.startswith("SessionTracker dump:\n")
    tracker, rest = text.split("ephemeral nodes dump:\n", 1)
    assert f"\t{sid}\n" in tracker and f"\t{osid}\n" in tracker
    assert re.search(r"Session Sets \(\d+\)/\(\d+\):\n", tracker)
    assert re.search(r"\d+ expire at [^\n]+:\n", tracker)
    ephemerals, connections = rest.split("Connections dump:\n", 1)
    m = re.fullmatch(r"Sessions with Ephemerals \(1\):\n(0x[0-9a-f]+):\n((?:\t[^\n]+\n)+)",
                     ephemerals)
    assert m, ephemerals
    assert m[1] == sid
    assert sorted(m[2].split()) == ["/d/e1", "/d/e2"]
    assert f"sessionId: {sid}" in connections


def test_trace_mask_words(srv):
    assert flw(srv, "gtmk") == "306"
    assert kh.stmk(srv.port, 31) == "31"
    assert flw(srv, "gtmk") == "31"
    assert kh.stmk(srv.port, 306) == "306"


def test_unknown_word_closes_without_answer(srv):
    assert kh.send_raw(srv.port, b"abcd") == b""
    assert flw(srv, "ruok") == "imok"


def test_word_after_handshake_is_not_a_command(srv):
    connect = Connect(0, 0, 10000, 0, b"\x00" * 16, False).serialize()
    with socket.create_connection((srv.host, srv.port), timeout=5) as s:
        s.sendall(struct.pack(">i", len(connect)) + bytes(connect))
        reply = b""
        while len(reply) < 41:  # 4-byte length + 37-byte ConnectResponse
            chunk = s.recv(41 - len(reply))
            assert chunk, reply
            reply += chunk
        assert struct.unpack(">i", reply[:4])[0] == 37
        # 'ruok' is now read as a frame length (0x72756f6b > jute.maxbuffer): closed
        s.sendall(b"ruok")
        rest = b""
        while True:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            rest += chunk
    assert rest == b""
