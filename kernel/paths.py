"""Path rules: ZooKeeper's PathUtils, on UTF-16 code units as Java sees them."""

from __future__ import annotations

import re

from kernel.errors import BadArguments

# Characters ZooKeeper refuses in a path. Anything above U+FFFF is a surrogate pair in
# Java and so lands in the refused surrogate range.
_BAD_CHAR = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\uf8ff\ufff0-\U0010ffff]")

RESERVED_PATHS = frozenset({"/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"})


def validate_path(path: str) -> None:
    """Raise BadArguments unless ``path`` is a valid znode path."""
    if not path or path[0] != "/":
        raise BadArguments(f"path must start with /: {path!r}")
    if len(path) == 1:
        return
    if path[-1] == "/":
        raise BadArguments(f"path must not end with /: {path!r}")
    if _BAD_CHAR.search(path):
        raise BadArguments(f"invalid character in path: {path!r}")
    for part in path[1:].split("/"):
        if part == "" or part == "." or part == "..":
            raise BadArguments(f"invalid path component in {path!r}")


def parent_of(path: str) -> str:
    """The parent path ("/" for top-level nodes); text before the last slash."""
    i = path.rfind("/")
    return path[:i] if i > 0 else "/"


def basename(path: str) -> str:
    """The last component of a path."""
    return path[path.rfind("/") + 1:]


def join(parent: str, name: str) -> str:
    """Child path of ``parent``."""
    return "/" + name if parent == "/" else parent + "/" + name
