"""Four-letter words on the client port, in the formats operators' tools parse.

The role-dependent parts follow ZooKeeper 3.8: ``Kernel.quorum`` (a ``QuorumStatus`` the
runtime keeps current) selects ``Mode:`` and ``zk_server_state``; a server that is
``looking`` (or not serving at all) answers ``This ZooKeeper instance is not currently
serving requests``; quorum members add ``zk_peer_state`` and ``zk_quorum_size``, a
leader its learner counts and proposal sizes (``srvr``: ``Proposal sizes
last/min/max``). ``hash`` prints the tree-digest log (``DataTree.digest_log``: the
digest at every zxid that is a multiple of 128) as ``<zxid hex>: <digest>`` lines, as
ZooKeeper does, then the digest at the last applied zxid.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import platform
import resource
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import kernel
from kernel.api import OP_SHORT_NAMES, Kernel

if TYPE_CHECKING:
    from plugins.transport_jute.connection import JuteConnection
    from plugins.transport_jute.server import JuteTransport

WORDS = ("conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "hash", "isro", "mntr",
         "ruok", "srst", "srvr", "stat", "stmk", "wchc", "wchp", "wchs")

#: A connection's first 4 bytes read as a big-endian int → the word they spell.
FOUR_LETTER_CODES: dict[int, str] = {
    struct.unpack(">i", w.encode())[0]: w for w in WORDS
}
FOUR_LETTER_CODES[struct.unpack(">i", b"\xff\xf4\xff\xfd")[0]] = "telnet-close"

VERSION = f"3.9.3-zkernel-{kernel.__version__}, built on 2026-11-27 00:00 UTC"

NOT_SERVING = "This ZooKeeper instance is not currently serving requests\n"
_ALWAYS_AVAILABLE = {"ruok", "envi", "gtmk", "stmk"}
READ_ONLY_BANNER = "READ-ONLY mode; serving only read-only clients"
#: QuorumStatus.mode -> ZooKeeper's ServerState name (zk_peer_state).
_PEER_STATES = {"leader": "leading", "follower": "following", "observer": "observing",
                "looking": "looking"}


def _java_date(epoch_ms: float) -> str:
    """java.util.Date.toString(): ``Fri Nov 27 15:38:48 UTC 2026``."""
    d = dt.datetime.fromtimestamp(epoch_ms / 1000, tz=dt.UTC)
    return d.strftime("%a %b %d %H:%M:%S UTC %Y")


def short_op_name(op: int | None) -> str:
    """The ``lop=`` name ``cons`` prints for an opcode."""
    return "NA" if op is None else OP_SHORT_NAMES.get(op, "NA")


def java_long(v: int) -> str:
    """An unsigned 64-bit value (the tree digest) as Java prints a long."""
    v &= (1 << 64) - 1
    return str(v - (1 << 64) if v >= 1 << 63 else v)


def peer_state(mode: str, phase: str, sync_mode: str = "none") -> str:
    """ZooKeeper's ``getDetailedPeerState``: ``following - broadcast``, ``looking``
    (no phase while electing), ``following - synchronization - diff``."""
    out = _PEER_STATES.get(mode, mode)
    if phase != "election":
        out += f" - {phase}"
    if sync_mode != "none":
        out += f" - {sync_mode}"
    return out


def _fmt_double(v: float) -> str:
    """A Java double rounded to 4 decimals as ZooKeeper prints averages."""
    r = round(v, 4)
    s = repr(float(r))
    return s


class FourLetterWords:
    """Answers four-letter words for one Jute transport."""

    def __init__(self, transport: JuteTransport) -> None:
        self.transport = transport
        self.kernel: Kernel = transport.kernel
        self.trace_mask = 306
        self.enabled = transport.kernel.config.four_letter_words
        self._handlers: dict[str, Callable[[JuteConnection], str]] = {
            "ruok": lambda c: "imok",
            "isro": lambda c: "ro" if self.kernel.quorum.mode == "read-only" else "rw",
            "gtmk": lambda c: str(self.trace_mask),
            "srvr": lambda c: self.srvr(False),
            "stat": lambda c: self.srvr(True),
            "conf": self.conf,
            "cons": self.cons,
            "crst": self.crst,
            "srst": self.srst,
            "envi": self.envi,
            "dirs": self.dirs,
            "dump": self.dump,
            "wchs": self.wchs,
            "wchc": self.wchc,
            "wchp": self.wchp,
            "mntr": self.mntr,
            "hash": self.hash,
        }

    def answer(self, word: str, extra: bytes, conn: JuteConnection) -> str:
        if word == "telnet-close":
            return ""
        if word not in self.enabled:
            return f"{word} is not executed because it is not in the whitelist.\n"
        if word == "stmk":
            if len(extra) >= 8:
                self.trace_mask = struct.unpack(">q", extra[:8])[0]
            return str(self.trace_mask)
        if not self.serving() and word not in _ALWAYS_AVAILABLE:
            return "null" if word == "isro" else NOT_SERVING
        return self._handlers[word](conn)

    def serving(self) -> bool:
        """ZooKeeper's isZKServerRunning: false while the peer is electing a leader."""
        return self.kernel.serving and self.kernel.quorum.mode != "looking"

    # -- the words ---------------------------------------------------------------------

    def _connections(self) -> list[JuteConnection]:
        return sorted(self.transport.connections, key=lambda c: (c.remote_port, id(c)))

    def srvr(self, with_clients: bool) -> str:
        k = self.kernel
        lat = k.stats.latency
        mode = k.quorum.mode
        lines = [f"Zookeeper version: {VERSION}"]
        if mode == "read-only":
            lines.append(READ_ONLY_BANNER)
        if with_clients:
            lines.append("Clients:")
            for c in self._connections():
                lines.append(self._cons_line(c, brief=True))
            lines.append("")
        lines += [
            f"Latency min/avg/max: {lat.min}/{_fmt_double(lat.avg)}/{lat.max}",
            f"Received: {k.stats.packets_received}",
            f"Sent: {k.stats.packets_sent}",
            f"Connections: {len(self.transport.connections)}",
            f"Outstanding: {k.outstanding_requests}",
            f"Zxid: {k.last_zxid:#x}",
            f"Mode: {mode}",
            f"Node count: {k.tree.node_count()}",
        ]
        if mode == "leader":
            q = k.quorum
            lines.append(f"Proposal sizes last/min/max: {q.last_proposal_size}/"
                         f"{q.min_proposal_size}/{q.max_proposal_size}")
        return "\n".join(lines) + "\n"

    def _cons_line(self, c: JuteConnection, brief: bool) -> str:
        head = (f" /{c.remote_address}:{c.remote_port}[{1 if c.session else 0}]"
                f"(queued=0,recved={c.received},sent={c.sent}")
        if brief or c.session is None:
            return head + ")"
        s = c.session
        avg = c.latency_total // c.latency_count if c.latency_count else 0
        parts = [
            f"sid={s.id:#x}", f"lop={short_op_name(c.last_op_code)}", f"est={c.established_ms}",
            f"to={s.timeout}",
        ]
        if c.last_cxid >= 0:
            parts.append(f"lcxid={c.last_cxid:#x}")
        parts += [
            f"lzxid={c.last_zxid:#x}" if c.last_zxid >= 0 else "lzxid=0xffffffffffffffff",
            f"lresp={c.last_response_ms}", "llat=0",
            f"minlat={max(c.latency_min, 0)}", f"avglat={avg}", f"maxlat={c.latency_max}",
        ]
        return head + "," + ",".join(parts) + ")"

    def cons(self, conn: JuteConnection) -> str:
        return "".join(self._cons_line(c, brief=False) + "\n"
                       for c in self._connections()) + "\n"

    def crst(self, conn: JuteConnection) -> str:
        for c in self.transport.connections:
            c.received = c.sent = 0
            c.last_op_code = None
            c.last_cxid = -1
            c.last_zxid = -1
            c.latency_min, c.latency_max, c.latency_total, c.latency_count = -1, 0, 0, 0
        return "Connection stats reset.\n"

    def srst(self, conn: JuteConnection) -> str:
        self.kernel.stats.reset()
        return "Server stats reset.\n"

    def conf(self, conn: JuteConnection) -> str:
        cfg = self.kernel.config
        data_size, log_size = self.kernel.storage.size_bytes()
        data_dir, log_dir = self.kernel.storage.locations()
        lines = [
            f"clientPort={self.transport.port if self.transport.port is not None else -1}",
            f"secureClientPort={self.transport.tls.port if self.transport.tls else -1}",
            f"dataDir={data_dir}",
            f"dataDirSize={data_size}",
            f"dataLogDir={log_dir}",
            f"dataLogSize={log_size}",
            f"tickTime={cfg.tick_time}",
            f"maxClientCnxns={cfg.max_client_cnxns}",
            f"minSessionTimeout={cfg.min_session_timeout}",
            f"maxSessionTimeout={cfg.max_session_timeout}",
            f"clientPortListenBacklog={cfg.listen_backlog}",
            f"serverId={cfg.server_id}",
        ]
        if len(cfg.servers) > 1:
            # What ZooKeeper adds on a quorum server (QuorumZooKeeperServer.dumpConf).
            me = cfg.servers.get(cfg.server_id)
            lines += [
                f"initLimit={cfg.init_limit}",
                f"syncLimit={cfg.sync_limit}",
                "electionAlg=3",
                f"electionPort={me.election_port if me else -1}",
                f"quorumPort={me.quorum_port if me else -1}",
                f"peerType={1 if me and me.observer else 0}",
                "membership: ",
            ]
            for sid in sorted(cfg.servers):
                a = cfg.servers[sid]
                role = "observer" if a.observer else "participant"
                client = ""
                if a.client_port is not None:
                    client = f";{a.client_host or '0.0.0.0'}:{a.client_port}"
                lines.append(f"server.{sid}={a.host}:{a.quorum_port}:{a.election_port}:"
                             f"{role}{client}")
            lines.append("version=0")
        return "\n".join(lines) + "\n"

    def envi(self, conn: JuteConnection) -> str:
        try:
            user = getpass.getuser()
        except Exception:
            user = "?"
        try:
            rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        except Exception:
            rss_kb = 0
        lines = [
            "Environment:",
            f"zookeeper.version={VERSION}",
            f"host.name={socket.gethostname()}",
            f"java.version={platform.python_version()}",
            f"java.vendor={platform.python_implementation()}",
            f"java.home={sys.prefix}",
            f"java.class.path={os.pathsep.join(sys.path)}",
            "java.library.path=",
            "java.io.tmpdir=/tmp",
            "java.compiler=<NA>",
            f"os.name={platform.system()}",
            f"os.arch={platform.machine()}",
            f"os.version={platform.release()}",
            f"user.name={user}",
            f"user.home={os.path.expanduser('~')}",
            f"user.dir={os.getcwd()}",
            "os.memory.free=0MB",
            "os.memory.max=0MB",
            f"os.memory.total={rss_kb // 1024}MB",
        ]
        return "\n".join(lines) + "\n"

    def dirs(self, conn: JuteConnection) -> str:
        data_size, log_size = self.kernel.storage.size_bytes()
        return f"datadir_size: {data_size}\nlogdir_size: {log_size}\n"

    def dump(self, conn: JuteConnection) -> str:
        k = self.kernel
        now_wall = time.time() * 1000
        now_mono = k.clock.mono_ms()
        buckets = sorted(k.expiry.buckets.items())
        live = [(w, s) for w, s in buckets if s]
        lines = ["SessionTracker dump:", f"Session Sets ({len(live)})/({len(k.sessions)}):"]
        for when, sids in live:
            lines.append(f"{len(sids)} expire at {_java_date(now_wall + when - now_mono)}:")
            lines += [f"\t{sid:#x}" for sid in sorted(sids)]
        eph = k.tree.ephemerals
        lines.append("ephemeral nodes dump:")
        lines.append(f"Sessions with Ephemerals ({len(eph)}):")
        for sid in sorted(eph):
            lines.append(f"{sid:#x}:")
            lines += [f"\t{p}" for p in sorted(eph[sid])]
        conns = self._connections()
        lines.append("Connections dump:")
        lines.append(f"Connections Sets (1)/({len(conns)}):")
        lines.append(f"{len(conns)} expire at {_java_date(now_wall)}:")
        for c in conns:
            sid = c.session.id if c.session else 0
            lines.append(f"\tip: /{c.remote_address}:{c.remote_port} sessionId: {sid:#x}")
        return "\n".join(lines) + "\n"

    def _watch_table(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for path, watchers in self.kernel.watches.data_watch_paths().items():
            sids = []
            for w in watchers:
                sess = getattr(w, "session", None)
                sids.append(sess.id if sess is not None else 0)
            if sids:
                out[path] = sids
        return out

    def wchs(self, conn: JuteConnection) -> str:
        table = self._watch_table()
        conns = {sid for sids in table.values() for sid in sids}
        total = sum(len(s) for s in table.values())
        return (f"{len(conns)} connections watching {len(table)} paths\n"
                f"Total watches:{total}\n")

    def wchc(self, conn: JuteConnection) -> str:
        by_sid: dict[int, list[str]] = {}
        for path, sids in self._watch_table().items():
            for sid in sids:
                by_sid.setdefault(sid, []).append(path)
        lines = []
        for sid, paths in by_sid.items():
            lines.append(f"{sid:#x}")
            lines += [f"\t{p}" for p in paths]
        return "\n".join(lines) + ("\n" if lines else "") + "\n"

    def wchp(self, conn: JuteConnection) -> str:
        lines = []
        for path, sids in self._watch_table().items():
            lines.append(path)
            lines += [f"\t{sid:#x}" for sid in sids]
        return "\n".join(lines) + ("\n" if lines else "") + "\n"

    def mntr(self, conn: JuteConnection) -> str:
        k = self.kernel
        st = k.stats
        lat = st.latency
        try:
            open_fds = len(os.listdir("/proc/self/fd"))
        except OSError:
            open_fds = -1
        try:
            max_fds = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        except Exception:
            max_fds = -1
        data_size, log_size = k.storage.size_bytes()
        q = k.quorum
        metrics: list[tuple[str, object]] = [("version", VERSION), ("server_state", q.mode)]
        quorum = q.mode in _PEER_STATES
        if quorum:
            metrics.append(("peer_state", peer_state(q.mode, q.phase,
                                                     getattr(q, "sync_mode", "none"))))
        metrics += [
            ("avg_latency", _fmt_double(lat.avg)),
            ("max_latency", lat.max),
            ("min_latency", lat.min),
            ("packets_received", st.packets_received),
            ("packets_sent", st.packets_sent),
            ("num_alive_connections", len(self.transport.connections)),
            ("outstanding_requests", k.outstanding_requests),
            ("uptime", k.clock.mono_ms() - st.start_mono_ms),
            ("znode_count", k.tree.node_count()),
            ("watch_count", k.watches.count()),
            ("ephemerals_count", sum(len(v) for v in k.tree.ephemerals.values())),
            ("approximate_data_size", k.tree.approximate_data_size()),
            ("global_sessions", len(k.sessions)),
            ("local_sessions", 0),
            ("open_file_descriptor_count", open_fds),
            ("max_file_descriptor_count", max_fds),
            ("connection_drop_probability", "0.0"),
            ("last_client_response_size", st.last_response_size),
            ("min_client_response_size", st.min_response_size),
            ("max_client_response_size", st.max_response_size),
            ("outstanding_tls_handshake", 0),
            ("auth_failed_count", st.auth_failed),
            ("non_mtls_remote_conn_count", 0),
            ("non_mtls_local_conn_count", 0),
            ("proposal_count", st.commits),
            ("commit_count", st.commits),
            ("data_dir_size", data_size),
            ("log_dir_size", log_size),
            ("throttled_ops", 0),
            ("stale_requests", 0),
            ("digest_mismatches_count", getattr(st, "digest_mismatches", 0)),
            # zkernel's: the tree digest (as `hash` prints it) and the zxid it belongs to.
            ("tree_digest", java_long(k.tree.digest)),
            ("tree_digest_zxid", k.tree.last_zxid),
        ]
        if quorum:
            metrics.append(("quorum_size", q.quorum_size))
        if q.mode == "leader":
            metrics += [
                ("learners", q.learners),
                ("synced_followers", q.synced_followers),
                ("synced_non_voting_followers", q.synced_non_voting_followers),
                ("synced_observers", q.synced_observers),
                ("pending_syncs", q.pending_syncs),
            ]
            since = getattr(q, "leader_since_ms", None)
            if isinstance(since, int) and since >= 0:
                metrics.append(("leader_uptime", k.clock.mono_ms() - since))
            metrics += [
                ("last_proposal_size", q.last_proposal_size),
                ("max_proposal_size", q.max_proposal_size),
                ("min_proposal_size", q.min_proposal_size),
            ]
        elif q.mode == "follower":
            metrics.append(("synced_observers", q.synced_observers))
        return "".join(f"zk_{k_}\t{v}\n" for k_, v in metrics)

    def hash(self, conn: JuteConnection) -> str:
        """The digest log, ``<zxid hex>: <digest>`` per line (ZooKeeper's DigestCommand),
        then the digest at the last applied zxid unless the log already ends there."""
        tree = self.kernel.tree
        entries = list(tree.digest_log)
        if not entries or entries[-1][0] != tree.last_zxid:
            entries.append((tree.last_zxid, tree.digest))
        return "".join(f"{z:x}: {java_long(d)}\n" for z, d in entries)
