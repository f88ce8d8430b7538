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
