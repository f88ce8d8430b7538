"""A whole tree as bytes: what a leader sends a learner too far behind for a DIFF.

Nodes go parents first (sorted paths), each with every stored field, then the sessions;
decoding builds a plain dict-backed DataTree with its indexes.
"""

from __future__ import annotations

from kernel.errors import ProtocolError
from kernel.jute import Reader, Writer
from kernel.records import ACL
from kernel.tree import DataTree, Node, SessionRecord, _data_size

_MAGIC = 0x7A6B736E  # "zksn"


def encode_snapshot(tree: DataTree) -> bytes:
    """Every node, every session and the zxid the tree reflects."""
    w = Writer()
    w.int(_MAGIC).long(tree.last_zxid)
    paths = sorted(p for p, _ in tree.walk())
    w.int(len(paths))
    for path in paths:
        n = tree.nodes[path]
        w.ustring(path).buffer(n.data)
        w.int(len(n.acl))
        for a in n.acl:
            w.int(a.perms).ustring(a.scheme).ustring(a.id)
        w.long(n.czxid).long(n.mzxid).long(n.ctime).long(n.mtime).int(n.version)
        w.int(n.c).int(n.aversion).long(n.owner).long(n.pzxid)
    w.int(len(tree.sessions))
    for sid, rec in sorted(tree.sessions.items()):
        w.long(sid).int(rec.timeout).buffer(rec.password)
    return bytes(w.buf)


def decode_snapshot(data: bytes) -> DataTree:
    """The tree ``encode_snapshot`` wrote; ProtocolError if the bytes are not one."""
    r = Reader(data, max_len=len(data) + 1)
    if r.int() != _MAGIC:
        raise ProtocolError("not a zkernel snapshot")
    tree = DataTree()
    tree.nodes.clear()
    tree.last_zxid = r.long()
    nodes = tree.nodes
    for _ in range(r.int()):
        path = r.string() or ""
        if not path.startswith("/") or (path != "/" and path.endswith("/")):
            raise ProtocolError(f"snapshot: bad path {path!r}")
        data_ = r.buffer()
        acl = tuple(ACL(r.int(), r.string() or "", r.string() or "") for _ in range(r.int()))
        czxid, mzxid, ctime, mtime = r.long(), r.long(), r.long(), r.long()
        version, c, aversion = r.int(), r.int(), r.int()
        owner = r.long()
        pzxid = r.long()
        node = Node(data_, acl, czxid, ctime, owner)
        node.mzxid, node.mtime, node.version, node.c = mzxid, mtime, version, c
        node.aversion, node.pzxid = aversion, pzxid
        nodes[path] = node
        if path != "/":
            if "/" not in nodes:
                raise ProtocolError("snapshot: nodes before the root")
            parent = path.rsplit("/", 1)[0] or "/"
            pnode = nodes.get(parent)
            if pnode is None:
                raise ProtocolError(f"snapshot: {path} comes before its parent")
            pnode.children.add(path.rsplit("/", 1)[1])
        if node.owner:
            tree.index_owner(path, node.owner)
    if "/" not in nodes:
        raise ProtocolError("snapshot without a root")
    tree.link_root_alias()
    for _ in range(r.int()):
        sid = r.long()
        timeout = r.int()
        tree.sessions[sid] = SessionRecord(timeout, r.buffer() or b"")
    if r.remaining():
        raise ProtocolError("trailing bytes after the snapshot")
    tree._data_size = _data_size(tree.nodes)
    tree.recompute_digest()
    return tree

