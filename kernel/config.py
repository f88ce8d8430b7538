"""zoo.cfg parsing and the plugin profile.

Every standard ZooKeeper key keeps its meaning. Keys ZooKeeper reads as system
properties (``zookeeper.X``) may be written in zoo.cfg either as ``X`` or as
``zookeeper.X``, as ZooKeeper itself allows. zkernel's own keys start with ``kernel.``
(plugin choice) or are new names such as ``grpcPort``; each has a default so a stock
zoo.cfg runs unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kernel.protocol import DEFAULT_JUTE_MAXBUFFER


class ConfigError(Exception):
    """A zoo.cfg that cannot be used, with a message an operator can act on."""


def _split_host(addr: str, key: str, value: str) -> tuple[str, str]:
    """``host:rest`` with IPv6 hosts in brackets (``[::1]:2888:3888``)."""
    if addr.startswith("["):
        close = addr.find("]")
        if close < 0 or addr[close + 1:close + 2] != ":":
            raise ConfigError(f"{key}={value}: bad IPv6 address {addr!r}")
        return addr[1:close], addr[close + 2:]
    host, sep, rest = addr.partition(":")
    if not sep or not host:
        raise ConfigError(f"{key}={value}: expected host:quorumPort:electionPort")
    return host.strip(), rest


def _read_myid(data_dir: Path | None) -> int:
    """The server id from ``dataDir/myid``, as ZooKeeper reads it."""
    if data_dir is None:
        raise ConfigError("dataDir is not set (an ensemble needs dataDir/myid)")
    path = data_dir / "myid"
    try:
        text = path.read_text().strip()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror} (each server of an "
                          f"ensemble needs a myid file with its server id)") from None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{path} must hold an integer server id, got {text!r}") from None


def _bool(v: str) -> bool:
    return v.strip().lower() in ("true", "yes", "1", "on")


@dataclass(frozen=True)
class PeerAddress:
    """One ``server.N`` line: the quorum and election addresses and the learner type."""

    sid: int
    host: str
    quorum_port: int
    election_port: int
    observer: bool = False
    client_host: str | None = None
    client_port: int | None = None


def parse_server_line(key: str, value: str) -> PeerAddress:
    """``server.N=host:quorumPort:electionPort[:participant|:observer][;[host:]port]``."""
    try:
        sid = int(key.split(".", 1)[1])
    except ValueError:
        raise ConfigError(f"{key}: the server id must be an integer") from None
    if not 0 < sid < 256:
        raise ConfigError(f"{key}: server ids must be 1..255 (they are the top byte of "
                          f"session ids)")
    addr, _, client = value.partition(";")
    # A server line may list several addresses separated by '|' (multi-address): the
    # first is used; the role may be written after any of them.
    addresses = [a.strip() for a in addr.split("|")]
    role = "participant"
    parsed: list[tuple[str, str, str]] = []
    for a in addresses:
        host, rest = _split_host(a, key, value)
        parts = rest.split(":")
        if len(parts) == 3:
            r = parts.pop().strip().lower()
            if r not in ("participant", "observer"):
                raise ConfigError(f"{key}={value}: unknown role {r!r}; expected "
                                  f"host:quorumPort:electionPort[:participant|:observer]")
            role = r
        if len(parts) != 2:
            raise ConfigError(f"{key}={value}: expected host:quorumPort:electionPort"
                              f"[:participant|:observer]")
        parsed.append((host, parts[0], parts[1]))
    host, q, e = parsed[0]
    try:
        qport, eport = int(q), int(e)
    except ValueError:
        raise ConfigError(f"{key}={value}: ports must be integers") from None
    for port in (qport, eport):
        if not 0 < port <= 65535:
            raise ConfigError(f"{key}={value}: port {port} out of range")
    chost: str | None = None
    cport: int | None = None
    if client.strip():
        c = client.strip()
        h, sep, pstr = c.rpartition(":")
        try:
            cport = int(pstr)
        except ValueError:
            raise ConfigError(f"{key}={value}: bad client address {c!r}") from None
        if not 0 < cport <= 65535:
            raise ConfigError(f"{key}={value}: client port {cport} out of range")
        chost = h.strip("[]") if sep else None
    return PeerAddress(sid, host, qport, eport, role == "observer", chost, cport)


@dataclass
class ServerConfig:
    """The settings the kernel and the built-in plugins read."""

    tick_time: int = 3000
    data_dir: Path | None = None
    data_log_dir: Path | None = None
    client_port: int = 2181
    client_port_address: str = "0.0.0.0"
    # secureClientPort: the TLS client port (None = no TLS listener); its address
    # defaults to clientPortAddress. clientPort absent from zoo.cfg with a
    # secureClientPort = TLS only, as ZooKeeper allows.
    secure_client_port: int | None = None
    secure_client_port_address: str | None = None
    min_session_timeout: int = -1
    max_session_timeout: int = -1
    max_client_cnxns: int = 60
    four_letter_words: frozenset[str] = frozenset({"srvr"})
    jute_maxbuffer: int = DEFAULT_JUTE_MAXBUFFER
    extended_types: bool = False
    container_check_interval_ms: int = 60000
    container_max_per_minute: int = 10000
    container_max_never_used_ms: int = 0
    super_digest: str | None = None
    skip_acl: bool = False
    reconfig_enabled: bool = False
    digest_enabled: bool = True
    listen_backlog: int = -1
    server_id: int = 0
    servers: dict[int, PeerAddress] = field(default_factory=dict)
    init_limit: int = 10
    sync_limit: int = 5
    force_sync: bool = True
    transports: tuple[str, ...] = ("jute",)
    storage: str = "lmdb"
    tracing: bool = False
    source: Path | None = None
    raw: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.min_session_timeout < 0:
            self.min_session_timeout = 2 * self.tick_time
        if self.max_session_timeout < 0:
            self.max_session_timeout = 20 * self.tick_time

    @property
    def replicated(self) -> bool:
        """True when zoo.cfg lists more than one server (or any ``server.N`` line and
        ``standaloneEnabled=false``): the server runs Zab with its peers."""
        if len(self.servers) > 1:
            return True
        return bool(self.servers) and not _bool(self.get("standaloneEnabled") or "true")

    def get(self, key: str, default: str | None = None) -> str | None:
        """A raw zoo.cfg value, for plugins' own keys (``zookeeper.`` prefix optional)."""
        if key in self.raw:
            return self.raw[key]
        return self.raw.get("zookeeper." + key, default)

    def clamp_timeout(self, requested: int) -> int:
        return max(self.min_session_timeout, min(requested, self.max_session_timeout))


ALL_FOUR_LETTER_WORDS = frozenset({
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "hash", "isro", "mntr", "ruok",
    "srst", "srvr", "stat", "stmk", "wchc", "wchp", "wchs",
})


def parse_zoo_cfg(text: str) -> dict[str, str]:
    """``key=value`` lines; ``#`` comments and blank lines ignored; last key wins."""
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise ConfigError(f"line {n}: expected key=value, got {line!r}")
        k, v = line.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def load_config(path: str | Path) -> ServerConfig:
    """Read a zoo.cfg file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read {p}: {e.strerror}") from None
    cfg = config_from_mapping(parse_zoo_cfg(text), base_dir=p.parent)
    cfg.source = p
    return cfg


def config_from_mapping(raw: Mapping[str, str], base_dir: Path | None = None) -> ServerConfig:
    """Build a ServerConfig from zoo.cfg keys (validated, with readable errors)."""
    raw = dict(raw)

    def get(*keys: str) -> str | None:
        for k in keys:
            for name in (k, "zookeeper." + k):
                if name in raw:
                    return raw[name]
        return None

    def get_int(default: int, *keys: str) -> int:
        v = get(*keys)
        if v is None or v == "":
            return default
        try:
            return int(v, 0) if v.lower().startswith("0x") else int(v)
        except ValueError:
            raise ConfigError(f"{keys[0]} must be an integer, got {v!r}") from None

    def get_path(*keys: str) -> Path | None:
        v = get(*keys)
        if not v:
            return None
        pth = Path(v)
        if not pth.is_absolute() and base_dir is not None:
            pth = base_dir / pth
        return pth

    tick = get_int(3000, "tickTime")
    if tick <= 0:
        raise ConfigError("tickTime must be positive")
    port = get_int(2181, "clientPort")
    if not 0 <= port <= 65535:
        raise ConfigError(f"clientPort out of range: {port}")
    secure_port: int | None = None
    if get("secureClientPort") not in (None, ""):
        secure_port = get_int(0, "secureClientPort")
        if not 0 <= secure_port <= 65535:
            raise ConfigError(f"secureClientPort out of range: {secure_port}")
    whitelist = get("4lw.commands.whitelist")
    if whitelist is None:
        words = frozenset({"srvr"})
    else:
        items = {w.strip() for w in whitelist.split(",") if w.strip()}
        words = ALL_FOUR_LETTER_WORDS if "*" in items else frozenset(items | {"srvr"})
    if _bool(get("readonlymode.enabled") or "false"):
        words = words | {"isro"}
    transports = tuple(t.strip() for t in (get("kernel.transports") or "jute").split(",")
                       if t.strip())
    super_digest = get("DigestAuthenticationProvider.superDigest", "superDigest")
    servers: dict[int, PeerAddress] = {}
    for key, value in raw.items():
        if key.startswith("server.") and key[7:].isdigit():
            peer = parse_server_line(key, value)
            servers[peer.sid] = peer
    server_id = get_int(0, "serverId")
    data_dir = get_path("dataDir")
    if servers and server_id == 0:
        server_id = _read_myid(data_dir)
        if server_id not in servers:
            raise ConfigError(f"myid {server_id} has no server.{server_id} line in the "
                              f"configuration")
    init_limit = get_int(10, "initLimit")
    sync_limit = get_int(5, "syncLimit")
    if servers and (init_limit <= 0 or sync_limit <= 0):
        raise ConfigError("initLimit and syncLimit must be positive")
    cfg = ServerConfig(
        tick_time=tick,
        data_dir=data_dir,
        data_log_dir=get_path("dataLogDir"),
        client_port=port,
        client_port_address=get("clientPortAddress") or "0.0.0.0",
        secure_client_port=secure_port,
        secure_client_port_address=get("secureClientPortAddress") or None,
        min_session_timeout=get_int(-1, "minSessionTimeout"),
        max_session_timeout=get_int(-1, "maxSessionTimeout"),
        max_client_cnxns=get_int(60, "maxClientCnxns"),
        four_letter_words=words,
        jute_maxbuffer=get_int(DEFAULT_JUTE_MAXBUFFER, "jute.maxbuffer"),
        extended_types=_bool(get("extendedTypesEnabled") or "false"),
        container_check_interval_ms=get_int(60000, "znode.container.checkIntervalMs"),
        container_max_per_minute=get_int(10000, "znode.container.maxPerMinute"),
        container_max_never_used_ms=get_int(0, "znode.container.maxNeverUsedIntervalMs"),
        super_digest=super_digest,
        skip_acl=_bool(get("skipACL") or "no"),
        reconfig_enabled=_bool(get("reconfigEnabled") or "false"),
        digest_enabled=_bool(get("DigestAuthenticationProvider.enabled") or "true"),
        listen_backlog=get_int(-1, "clientPortListenBacklog"),
        server_id=server_id,
        servers=servers,
        init_limit=init_limit,
        sync_limit=sync_limit,
        force_sync=_bool(get("forceSync") or "yes"),
        transports=transports or ("jute",),
        storage=(get("kernel.storage") or "lmdb").strip(),
        tracing=_bool(get("kernel.tracing") or "false"),
        raw=raw,
    )
    if cfg.min_session_timeout > cfg.max_session_timeout:
        raise ConfigError(
            f"minSessionTimeout ({cfg.min_session_timeout}) must not be larger than "
            f"maxSessionTimeout ({cfg.max_session_timeout})")
    if cfg.jute_maxbuffer <= 0:
        raise ConfigError("jute.maxbuffer must be positive")
    return cfg
