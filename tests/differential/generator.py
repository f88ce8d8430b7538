"""Seeded generator of random but meaningful operation sequences.

A sequence is a list of JSON-able steps ``{"s": slot, "op": name, ...}``. Paths are
relative to the sequence root (``""`` is the root itself, ``"/a"`` a child) and drawn from
a tiny namespace so that operations collide often. Slots 0 and 1 use one-time watches and
removeWatches; slot 2 alone uses persistent/recursive watches (3.8 and 3.9 differ when one
connection mixes the two on a path, see normalize.ALLOWED).

Deliberately not generated (3.8 vs 3.9 differences, see docs/compatibility.md):
standalone ``check``; check/removeWatches types 4/5; ``create2`` inside a multi; ACLs
that deny world READ (exists-without-READ and notification ACL filtering differ);
IPv6 ``ip`` ACL ids.

``generate_timing`` builds the timing sequences (session expiry, TTL expiry, container
reaping, setWatches after a reconnect); see the section at the end of this module.
"""

from __future__ import annotations

import random
from typing import Any

NAMES = ["/a", "/b", "/a/x", "/a/y", "/b/x", "/a/x/q"]
DATA = ["", "v1", "v2", "hello", "\u00e9t\u00e9", "x" * 300]
INVALID_PATHS = ["/a/", "a", "//a", "/a/./b", "/a/../b", "/a\u0000b"]

# perms, scheme, id; every ACL keeps READ for everybody (see module doc)
ACLS: list[list[list[Any]]] = [
    [[31, "world", "anyone"]],
    [[1, "world", "anyone"], [31, "digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="]],
    [[1 | 4, "world", "anyone"], [31, "auth", ""]],
    [[31, "ip", "127.0.0.1"]],
    [[1 | 8, "world", "anyone"]],
    [[1 | 2 | 4, "world", "anyone"], [16, "digest", "bob:xxx="]],
    [[31, "world", "other"]],            # InvalidACL
    [[1, "world", "anyone"], [31, "digest", "notahash"]],  # InvalidACL (no colon)
]
AUTHS = ["alice:secret", "bob:secret", "mallory:nope"]

# create modes: (flags, opcode)
CREATE_MODES = [
    (0, "create"), (0, "create2"), (1, "create"), (2, "create2"), (3, "create"),
    (4, "createContainer"), (5, "createTTL"), (6, "createTTL"), (0, "createTTL"),
]


def _path(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.05:
        return rng.choice(INVALID_PATHS)
    if r < 0.10:
        return ""
    return rng.choices(NAMES, weights=[5, 4, 3, 2, 2, 1])[0]


def _version(rng: random.Random) -> int:
    return rng.choice([-1, -1, 0, 0, 1, 2, 5])


def _sub_op(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(["create", "create", "delete", "setData", "check", "check"])
    p = _path(rng)
    if kind == "create":
        return {"op": "create", "path": p, "data": rng.choice(DATA),
                "flags": rng.choice([0, 0, 1, 2, 3]), "acl": 0}
    if kind == "setData":
        return {"op": "setData", "path": p, "data": rng.choice(DATA), "version": _version(rng)}
    return {"op": kind, "path": p, "version": _version(rng)}


def gen_step(rng: random.Random, nslots: int) -> dict[str, Any]:
    s = rng.randrange(nslots)
    p = _path(rng)
    r = rng.random()
    st: dict[str, Any] = {"s": s}
    if r < 0.26:
        flags, opname = rng.choice(CREATE_MODES)
        st.update(op=opname, path=p, data=rng.choice(DATA), flags=flags,
                  acl=rng.choice([0, 0, 0, 1, 2, 3, 4, 5, 6, 7]))
        if opname == "createTTL":
            # a negative TTL with a non-TTL flag crashes 3.8 (allow-list "createTTL-non-ttl")
            st["ttl"] = rng.choice([60000, 60000, 60000, 0, -5]) if flags in (5, 6) else 60000
    elif r < 0.32:
        st.update(op="delete", path=p, version=_version(rng))
    elif r < 0.39:
        st.update(op="setData", path=p, data=rng.choice(DATA), version=_version(rng))
    elif r < 0.45:
        st.update(op="getData", path=p, watch=s != 2 and rng.random() < 0.8)
    elif r < 0.50:
        st.update(op="exists", path=p, watch=s != 2 and rng.random() < 0.8)
    elif r < 0.56:
        st.update(op=rng.choice(["getChildren", "getChildren2"]), path=p,
                  watch=s != 2 and rng.random() < 0.8)
    elif r < 0.58:
        st.update(op="getAllChildrenNumber", path=p)
    elif r < 0.60:
        st.update(op="getEphemerals", path=rng.choice(["", "/a", "/"]))
    elif r < 0.68:
        st.update(op="multi", ops=[_sub_op(rng) for _ in range(rng.randint(1, 4))])
    elif r < 0.71:
        st.update(op="multiRead", ops=[{"op": rng.choice(["getData", "getChildren"]),
                                        "path": _path(rng)}
                                       for _ in range(rng.randint(1, 3))])
    elif r < 0.74:
        st.update(op="setACL", path=p, acl=rng.choice([0, 0, 1, 2, 3, 4, 5, 6]),
                  version=_version(rng))
    elif r < 0.77:
        st.update(op="getACL", path=p)
    elif r < 0.80:
        st.update(op="addAuth", auth=rng.choice(AUTHS[:2]))
    elif r < 0.82:
        st.update(op="sync", path=p)
    elif r < 0.87:
        if s == 2:
            # one mode per path: 3.8 lets persistent and recursive on one path replace
            # each other, 3.9 keeps both (allow-list "persistent-watch-types")
            st.update(op="addWatch", path=p, mode=1 if p in ("", "/b") else 0)
        else:
            st.update(op="removeWatches", path=p, type=rng.choice([1, 2, 3]))
    elif r < 0.885:
        st.update(op="close")
    elif r < 0.895:
        st.update(op="oversized", path=p)
    else:
        st.update(op="create", path=p, data=rng.choice(DATA), flags=0, acl=0)
    return st


def generate(seed: int, steps: int = 40, nslots: int | None = None) -> dict[str, Any]:
    """A sequence for ``seed``: ``{"seed", "slots", "steps"}``."""
    rng = random.Random(seed)
    n = nslots or rng.choice([2, 3, 3])
    out: list[dict[str, Any]] = []
    if rng.random() < 0.7:  # usually start from a small populated tree: more collisions
        for p in ("/a", "/b", "/a/x")[:rng.randint(1, 3)]:
            out.append({"s": rng.randrange(n), "op": "create", "path": p,
                        "data": rng.choice(DATA), "flags": rng.choice([0, 0, 0, 2]),
                        "acl": 0})
    while len(out) < steps:
        out.append(gen_step(rng, n))
    return {"seed": seed, "slots": n, "steps": out}


# -- timing-based sequences ---------------------------------------------------------------
#
# Session expiry, TTL expiry, container reaping and setWatches after a reconnect depend on
# server timers. They run on servers with short timers (shrink.TIMING_CFG) and are made
# deterministic by construction:
#
# * one slot per sequence (``short``) opens its sessions with a short timeout; only it is
#   ever disconnected without closing ("disconnect"); it either resumes within a few fast
#   steps ("reconnect": the client's watches are replayed with setWatches) or a "wait"
#   step lets it expire; every other session has a long timeout;
# * containers and short-TTL nodes live only under "/t", which ordinary steps never touch;
#   the step that makes one reapable carries ``"settle": true`` (or is a "wait"), so the
#   reaper acts while that step's observations are being collected, never between steps;
# * ordinary steps create no containers, and their TTL nodes have a TTL far longer than a
#   sequence (the runner deletes the sequence's nodes when it ends).

SHORT_SESSION_MS = 800     # the short slot's session timeout
LONG_SESSION_MS = 30000    # every other session
SHORT_TTL_MS = 1000        # TTL of the nodes the TTL episodes create (the steps between
                           # a create and its wait must take less)


def _ordinary(rng: random.Random, nslots: int, short: int,
              avoid: int | None = None) -> dict[str, Any]:
    """An ordinary step that cannot start a timer: no containers, and no step that would
    leave the short slot's session behind without a close."""
    while True:
        st = gen_step(rng, nslots)
        if st["s"] == avoid:
            continue
        if st["op"] == "createContainer":
            st.update(op="create", flags=0)
        if st["s"] == short and st["op"] == "oversized":
            continue
        return st


def _watch_step(rng: random.Random, s: int, path: str) -> dict[str, Any]:
    if s == 2:
        return {"s": s, "op": "addWatch", "path": path,
                "mode": 1 if path in ("", "/b", "/t") else 0}
    op = rng.choice(["getData", "exists", "exists", "getChildren", "getChildren2"])
    return {"s": s, "op": op, "path": path, "watch": True}


def _create(s: int, path: str, rng: random.Random, flags: int = 0,
            op: str = "create") -> dict[str, Any]:
    return {"s": s, "op": op, "path": path, "data": rng.choice(DATA[:4]), "flags": flags,
            "acl": 0}


def _ep_container(rng: random.Random, n: int, nslots: int, short: int,
                  k: int) -> list[dict[str, Any]]:
    c = f"/t/c{k}"
    out = [_create(rng.randrange(n), "/t", rng),
           _create(rng.randrange(n), c, rng, 4, "createContainer")]
    for s in rng.sample(range(n), rng.randint(1, n)):
        out.append(_watch_step(rng, s, rng.choice([c, c, "/t"])))
    kids = [f"{c}/k{j}" for j in range(rng.choice([0, 1, 1, 2]))]
    owner = {}
    for kid in kids:
        s = rng.randrange(n)
        flags = rng.choice([0, 0, 1])
        owner[kid] = (s, flags)
        out.append(_create(s, kid, rng, flags))
        if rng.random() < 0.5:
            out.append(_watch_step(rng, rng.randrange(n), kid))
    how = rng.random()
    if not kids:
        out.append({"s": rng.randrange(n), "op": "wait"})  # cversion 0: never reaped
    elif how < 0.45:
        for i, kid in enumerate(kids):
            st = {"s": rng.randrange(n), "op": "delete", "path": kid, "version": -1}
            if i == len(kids) - 1:
                st["settle"] = True
            out.append(st)
    elif how < 0.75:
        out.append({"s": rng.randrange(n), "op": "multi", "settle": True,
                    "ops": [{"op": "delete", "path": kid, "version": -1}
                            for kid in reversed(kids)]})
    else:
        # emptied by closing the session owning an ephemeral child, or not emptied at all
        eph = [kid for kid in kids if owner[kid][1] == 1]
        if eph and all(owner[kid][1] == 1 and owner[kid][0] == owner[eph[0]][0]
                       for kid in kids):
            out.append({"s": owner[eph[0]][0], "op": "close", "settle": True})
        else:
            out.append({"s": rng.randrange(n), "op": "wait"})
            for kid in kids:
                out.append({"s": rng.randrange(n), "op": "delete", "path": kid,
                            "version": -1})
            out[-1]["settle"] = True
    s = rng.randrange(n)
    out.append({"s": s, "op": "exists", "path": c, "watch": s != 2 and rng.random() < 0.3})
    out.append({"s": rng.randrange(n), "op": "getChildren2", "path": "/t", "watch": False})
    return out


def _ep_ttl(rng: random.Random, n: int, nslots: int, short: int,
            k: int) -> list[dict[str, Any]]:
    p = f"/t/t{k}"
    out = [_create(rng.randrange(n), "/t", rng)]
    for _ in range(rng.choice([1, 1, 2])):
        flags = rng.choice([5, 5, 6])
        out.append({"s": rng.randrange(n), "op": "createTTL", "path": p,
                    "data": rng.choice(DATA[:4]), "flags": flags, "acl": 0,
                    "ttl": SHORT_TTL_MS})
    child = rng.random() < 0.3
    if child:
        out.append(_create(rng.randrange(n), p + "/k", rng))
    for s in rng.sample(range(n), rng.randint(0, n)):
        out.append(_watch_step(rng, s, rng.choice([p, "/t"])))
    if rng.random() < 0.4:
        out.append({"s": rng.randrange(n), "op": "setData", "path": p,
                    "data": rng.choice(DATA[:4]), "version": -1})
    if rng.random() < 0.3:
        out.append({"s": rng.randrange(n), "op": "getData", "path": p, "watch": False})
    out.append({"s": rng.randrange(n), "op": "wait"})
    out.append({"s": rng.randrange(n), "op": "getChildren2", "path": "/t", "watch": False})
    if child:
        out.append({"s": rng.randrange(n), "op": "exists", "path": p, "watch": False})
        out.append({"s": rng.randrange(n), "op": "delete", "path": p + "/k", "version": -1,
                    "settle": True})
        out.append({"s": rng.randrange(n), "op": "getChildren2", "path": "/t",
                    "watch": False})
    return out


def _ep_expire(rng: random.Random, n: int, nslots: int, short: int,
               k: int) -> list[dict[str, Any]]:
    others = [s for s in range(n) if s != short]
    paths = rng.sample(["/a", "/b", "/a/x", "/b/x", f"/t/e{k}", f"/t/x{k}/e"],
                       rng.randint(1, 2))
    out: list[dict[str, Any]] = []
    if any(p.startswith("/t/") for p in paths):
        out.append(_create(rng.choice(others), "/t", rng))
    if f"/t/x{k}/e" in paths:  # a container the expiry empties: reaped in the same wait
        out.append(_create(rng.choice(others), f"/t/x{k}", rng, 4, "createContainer"))
    for p in paths:
        out.append(_create(short, p, rng, rng.choice([1, 1, 3])))
    for s in rng.sample(others, rng.randint(1, len(others))):
        out.append(_watch_step(rng, s, rng.choice(paths + ["", "/a"])))
    out.append({"s": short, "op": "disconnect"})
    for _ in range(rng.randint(0, 2)):
        out.append(_ordinary(rng, nslots, short, avoid=short))
    out.append({"s": rng.choice(others), "op": "wait"})
    for p in paths[:1]:
        out.append({"s": rng.choice(others), "op": "exists", "path": p, "watch": False})
    out.append({"s": short, "op": "reconnect"})
    return out


def _ep_reconnect(rng: random.Random, n: int, nslots: int, short: int,
                  k: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    watched = [rng.choice(["", "/a", "/a", "/b", "/a/x", "/b/x"])
               for _ in range(rng.randint(1, 3))]
    for p in watched:
        out.append(_watch_step(rng, short, p))
    if rng.random() < 0.3:
        out.append({"s": short, "op": "addAuth", "auth": rng.choice(AUTHS[:2])})
    if rng.random() < 0.3:
        out.append({"s": short, "op": "disconnect", "half_open": True})
    else:
        out.append({"s": short, "op": "disconnect"})
    others = [s for s in range(n) if s != short]
    changes = [_ordinary(rng, nslots, short, avoid=short) for _ in range(rng.randint(0, 3))]
    for _ in range(rng.randint(1, 2)):  # changes to what the slot watches, while it is away
        p = rng.choice(watched)
        kids = [q for q in NAMES if q.rsplit("/", 1)[0] == p]
        kind = rng.choice(["setData", "create", "delete", "child"])
        s = rng.choice(others)
        if kind == "setData":
            changes.append({"s": s, "op": "setData", "path": p, "data": rng.choice(DATA[:4]),
                            "version": -1})
        elif kind == "create" or (kind == "child" and not kids):
            changes.append(_create(s, p, rng, rng.choice([0, 0, 1])))
        elif kind == "child":
            changes.append(_create(s, rng.choice(kids), rng, rng.choice([0, 1])))
        else:
            changes.append({"s": s, "op": "delete", "path": p, "version": -1})
    rng.shuffle(changes)
    out.extend(changes)
    out.append({"s": short, "op": "reconnect"})
    return out


EPISODES = [_ep_container, _ep_ttl, _ep_expire, _ep_reconnect, _ep_reconnect]


def generate_timing(seed: int, steps: int = 30, nslots: int | None = None) -> dict[str, Any]:
    """A timing sequence for ``seed``: ordinary steps interleaved with episodes of session
    expiry, TTL expiry, container reaping and reconnects (see the section comment)."""
    rng = random.Random(seed ^ 0x5EED71)
    n = nslots or rng.choice([2, 3, 3])
    short = rng.randrange(n)
    out: list[dict[str, Any]] = []
    for p in ("/a", "/b", "/a/x")[:rng.randint(1, 3)]:
        out.append(_create(rng.randrange(n), p, rng))
    k = 0
    while len(out) < steps:
        for _ in range(rng.randint(1, 4)):
            out.append(_ordinary(rng, n, short))
        ep = rng.choice(EPISODES)
        out.extend(ep(rng, n, n, short, k))
        k += 1
    return {"seed": seed, "slots": n, "timing": True,
            "timeouts": {str(s): SHORT_SESSION_MS if s == short else LONG_SESSION_MS
                         for s in range(n)},
            "short": short, "steps": out}
