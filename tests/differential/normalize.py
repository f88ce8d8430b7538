"""Normalisation: remove only what must differ between two servers, and the explicit
allow-list of known, deliberate ZooKeeper 3.8 vs 3.9 differences (zkernel follows 3.9).

What must differ and how it is mapped (per sequence, so other sequences' sessions and
transactions on the same server do not matter):

* zxids (reply header ``zxid``, Stat ``czxid``/``mzxid``/``pzxid``): every positive value
  seen in the sequence is replaced by its rank among them (0 and -1 stay literal);
* ``ctime``/``mtime``: zero or not (``"T"``);
* session ids: the i-th session the sequence opened is ``"S<i>"``; ``ephemeralOwner`` and
  the session id a reconnect is answered with are mapped through the same table (a
  negative ``ephemeralOwner``, a container or TTL marker, would stay literal);
* the sequence's root path (unique per run) becomes ``/R`` in every string.

Everything else is compared exactly: return codes, data, children (sorted), every other
Stat field, multi result layouts, ACLs, the notifications per connection and their order
relative to the reply.
"""

from __future__ import annotations

from typing import Any

ZXID_KEYS = ("zxid", "czxid", "mzxid", "pzxid")

# Known 3.8-vs-3.9 differences. "normalised" entries are rewritten below on both sides;
# "avoided" entries are never generated (generator.py) so they cannot show up.
ALLOWED: dict[str, dict[str, str]] = {
    "notification-zxid": {
        "how": "normalised: the zxid of a watch notification header is dropped",
        "reason": "3.8 always sends -1; 3.9 (ZOOKEEPER-4655) and zkernel send the zxid of "
                  "the transaction that fired the watch.",
    },
    "exists-without-read": {
        "how": "avoided: every generated ACL grants READ to everybody",
        "reason": "3.8.0 returns the Stat; 3.8.4+/3.9.2+ and zkernel answer NoAuth.",
    },
    "notification-acl-filter": {
        "how": "avoided: every generated ACL grants READ to everybody",
        "reason": "3.9.2+ (ZOOKEEPER-4799) and zkernel drop notifications for nodes the "
                  "watcher cannot READ; 3.8 delivers them.",
    },
    "create2-in-multi": {
        "how": "avoided: multi sub-ops use create (opcode 1) only",
        "reason": "3.8 answers a create2 inside a multi with result type 1 (ZOOKEEPER-4026); "
                  "3.9 and zkernel with type 15 and a Stat.",
    },
    "persistent-watch-types": {
        "how": "avoided: removeWatches uses types 1-3, and only on connections (slots 0, 1) "
               "that never add persistent watches; addWatch only on slot 2, which sets no "
               "standard watches, and always with the same mode for a given path",
        "reason": "3.8 answers types 4/5 with MarshallingError; 3.8 lets types 1/2 match a "
                  "persistent watch and lets a persistent and a standard watch on one "
                  "path replace each other (ZOOKEEPER-4466); 3.9 and zkernel do not.",
    },
    "standalone-check": {
        "how": "avoided: check is only generated inside multi",
        "reason": "3.8 runs a standalone check as a transaction; 3.9 and zkernel answer "
                  "Unimplemented and close (ZOOKEEPER-2623).",
    },
    "createTTL-non-ttl": {
        "how": "avoided: opcode 21 with a non-TTL flag is only sent with a valid TTL",
        "reason": "3.8 accepts opcode 21 with a non-TTL flag and a negative TTL and fails "
                  "applying it (server exits); zkernel answers BadArguments (deliberate).",
    },
    "ephemeral-close-order": {
        "how": "normalised: on a step that closes a session (closeSession answered, then "
               "the connection closed) each connection's notifications between the "
               "reply markers are sorted",
        "reason": "ZooKeeper deletes a closing session's ephemerals in the iteration order "
                  "of a Java HashSet of their paths (String.hashCode), which changes with "
                  "the sequence's root name; no client can rely on it. Found by the tester: "
                  "seeds 31570, 32088, 32312, 32694, 33483 (NodeDeleted /R/b before /R/a on "
                  "ZooKeeper, /R/a before /R/b on zkernel).",
    },
    "timer-order": {
        "how": "normalised: on a step during which the servers' timers acted (a wait, or "
               "a step marked settle: session expiry, container and TTL reaping) each "
               "connection's notifications between the reply markers are sorted",
        "reason": "ZooKeeper's reaper deletes the candidates of one pass in the iteration "
                  "order of a HashSet of their paths (ContainerManager.getCandidates), and "
                  "an expired session's ephemerals like a closed one's (see "
                  "ephemeral-close-order); which pass a node falls into depends on the "
                  "timer phase. No client can rely on that order.",
    },
    "ipv6-ip-acl": {
        "how": "avoided: ip ACLs use 127.0.0.1 only",
        "reason": "IPv6 ip ACL id parsing differs between releases.",
    },
}


def _collect_zxids(x: Any, acc: set[int], key: str | None = None,
                   in_event: bool = False) -> None:
    if isinstance(x, dict):
        ev = in_event or "event" in x
        for k, v in x.items():
            _collect_zxids(v, acc, k, ev)
    elif isinstance(x, list):
        for v in x:
            _collect_zxids(v, acc, key, in_event)
    elif isinstance(x, int) and key in ZXID_KEYS and x > 0 and not in_event:
        acc.add(x)


def normalize(raw: dict[str, Any]) -> list[Any]:
    """Normalised observations of one run (``Runner.run`` output)."""
    root: str = raw["root"]
    zx: set[int] = set()
    _collect_zxids(raw["steps"], zx)
    rank = {z: i + 1 for i, z in enumerate(sorted(zx))}
    sess = {sid: f"S{i}" for i, sid in enumerate(raw["sessions"])}

    def walk(x: Any, key: str | None = None) -> Any:
        if isinstance(x, dict):
            if "event" in x:
                # allow-list "notification-zxid"
                return {k: walk(v, k) for k, v in x.items() if k != "zxid"}
            return {k: walk(v, k) for k, v in x.items()}
        if isinstance(x, list):
            items = [walk(v, key) for v in x]
            if key == "children" and all(isinstance(i, str) for i in items):
                items.sort()
            return items
        if isinstance(x, str):
            return x.replace(root, "/R")
        if isinstance(x, bool) or not isinstance(x, int):
            return x
        if key in ZXID_KEYS:
            return rank.get(x, x)
        if key in ("ctime", "mtime"):
            return "T" if x else 0
        if key == "ephemeralOwner":
            if x < 0:
                return x  # a container/TTL marker (ZooKeeper reports 0 for those nodes)
            return sess.get(x, "S?") if x else 0
        if key == "session":
            return sess.get(x, "S?") if x else 0
        return x

    out = [walk(s) for s in raw["steps"]]
    for obs in out:
        if isinstance(obs, dict) and (obs.get("after") == "CLOSED" or obs.get("settled")):
            # allow-lists "ephemeral-close-order" and "timer-order"
            obs["conns"] = {k: _sort_runs(v) for k, v in obs["conns"].items()}
    return out


def _sort_runs(items: list[Any]) -> list[Any]:
    """Sort the notifications between markers ("REPLY", "LOST"), keeping the markers."""
    out: list[Any] = []
    run: list[Any] = []
    for x in items + ["END"]:
        if isinstance(x, dict):
            run.append(x)
            continue
        out.extend(sorted(run, key=lambda e: (e["path"], e["event"], e["state"])))
        run = []
        if x != "END":
            out.append(x)
    return out


def first_difference(expected: list[Any], actual: list[Any]) -> int | None:
    """Index of the first differing step, or None."""
    for i, (a, b) in enumerate(zip(expected, actual, strict=False)):
        if a != b:
            return i
    if len(expected) != len(actual):
        return min(len(expected), len(actual))
    return None
