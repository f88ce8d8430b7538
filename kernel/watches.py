"""Watch registration and triggering (ZooKeeper's two tables, three modes).

Watches belong to a connection (a ``Watcher``), not to a session: when a connection
goes away its watches go with it, and clients restore them with setWatches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from kernel.protocol import EventType, Perm, WatcherType
from kernel.records import ACL, Id

STANDARD = 1
PERSISTENT = 2
RECURSIVE = 4


class Watcher(Protocol):
    """Something that receives watch notifications (a client connection)."""

    ids: list[Id]

    def notify(self, event_type: int, path: str, zxid: int) -> None:
        """Queue a notification; must not block or re-enter the kernel."""
        ...


Table = dict[str, dict[Watcher, int]]


def _add(table: Table, path: str, watcher: Watcher, mode: int) -> None:
    entry = table.get(path)
    if entry is None:
        table[path] = {watcher: mode}
    else:
        entry[watcher] = entry.get(watcher, 0) | mode


class WatchManager:
    """The data and child watch tables of one server."""

    def __init__(self, allowed: Callable[[Sequence[ACL], Sequence[Id], int], bool]) -> None:
        self.data: Table = {}
        self.child: Table = {}
        self._recursive = 0
        self._allowed = allowed
        self._by_watcher: dict[Watcher, set[str]] = {}

    # -- registration ------------------------------------------------------------------

    def add_data(self, path: str, watcher: Watcher, mode: int = STANDARD) -> None:
        if mode & RECURSIVE:
            entry = self.data.get(path)
            if entry is None or not entry.get(watcher, 0) & RECURSIVE:
                self._recursive += 1
        _add(self.data, path, watcher, mode)
        self._by_watcher.setdefault(watcher, set()).add(path)

    def add_child(self, path: str, watcher: Watcher, mode: int = STANDARD) -> None:
        _add(self.child, path, watcher, mode)
        self._by_watcher.setdefault(watcher, set()).add(path)

    def add_persistent(self, path: str, watcher: Watcher, recursive: bool) -> None:
        if recursive:
            self.add_data(path, watcher, RECURSIVE)
        else:
            self.add_data(path, watcher, PERSISTENT)
            self.add_child(path, watcher, PERSISTENT)

    def _remove_mode(self, table: Table, path: str, watcher: Watcher, mode: int) -> bool:
        entry = table.get(path)
        if entry is None:
            return False
        have = entry.get(watcher, 0)
        if not have & mode:
            return False
        if have & mode & RECURSIVE and table is self.data:
            self._recursive -= 1
        rest = have & ~mode
        if rest:
            entry[watcher] = rest
        else:
            del entry[watcher]
            if not entry:
                del table[path]
        return True

    def has(self, path: str, watcher: Watcher, wtype: int) -> bool:
        """checkWatches semantics."""
        d = self.data.get(path, {}).get(watcher, 0)
        c = self.child.get(path, {}).get(watcher, 0)
        if wtype == WatcherType.CHILDREN:
            return bool(c & STANDARD)
        if wtype == WatcherType.DATA:
            return bool(d & STANDARD)
        if wtype == WatcherType.ANY:
            return bool(d or c)
        if wtype == WatcherType.PERSISTENT:
            return bool(d & PERSISTENT)
        if wtype == WatcherType.PERSISTENT_RECURSIVE:
            return bool(d & RECURSIVE)
        return False

    def remove(self, path: str, watcher: Watcher, wtype: int) -> bool:
        """removeWatches semantics; True if something was removed."""
        if wtype == WatcherType.CHILDREN:
            return self._remove_mode(self.child, path, watcher, STANDARD)
        if wtype == WatcherType.DATA:
            return self._remove_mode(self.data, path, watcher, STANDARD)
        if wtype == WatcherType.ANY:
            a = self._remove_mode(self.data, path, watcher, STANDARD | PERSISTENT | RECURSIVE)
            b = self._remove_mode(self.child, path, watcher, STANDARD | PERSISTENT)
            return a or b
        if wtype == WatcherType.PERSISTENT:
            a = self._remove_mode(self.data, path, watcher, PERSISTENT)
            b = self._remove_mode(self.child, path, watcher, PERSISTENT)
            return a or b
        if wtype == WatcherType.PERSISTENT_RECURSIVE:
            return self._remove_mode(self.data, path, watcher, RECURSIVE)
        return False

    def remove_watcher(self, watcher: Watcher) -> None:
        """Drop every watch of a connection that went away."""
        for path in self._by_watcher.pop(watcher, ()):
            self._remove_mode(self.data, path, watcher, STANDARD | PERSISTENT | RECURSIVE)
            self._remove_mode(self.child, path, watcher, STANDARD | PERSISTENT)

    # -- triggering --------------------------------------------------------------------

    def trigger(self, event_type: int, path: str, acl: Sequence[ACL], zxid: int) -> None:
        """Fire the watches a change at ``path`` triggers (one event per watcher)."""
        if event_type == EventType.NODE_CHILDREN_CHANGED:
            fired = self._fire(self.child, path, None)
        else:
            fired = self._fire(self.data, path, None)
            if self._recursive:
                p = path
                while p != "/":
                    i = p.rfind("/")
                    p = p[:i] if i > 0 else "/"
                    entry = self.data.get(p)
                    if entry:
                        for w, mode in entry.items():
                            if mode & RECURSIVE and w not in fired:
                                fired[w] = mode
            if event_type == EventType.NODE_DELETED:
                self._fire(self.child, path, fired)
        if not fired:
            return
        open_acl = not acl or any(a.scheme == "world" and a.perms & Perm.READ for a in acl)
        for w in fired:
            if open_acl or self._allowed(acl, w.ids, Perm.READ):
                w.notify(event_type, path, zxid)

    @staticmethod
    def _fire(table: Table, path: str, already: dict[Watcher, int] | None
              ) -> dict[Watcher, int]:
        fired: dict[Watcher, int] = {} if already is None else already
        entry = table.get(path)
        if not entry:
            return fired
        standard_only: list[Watcher] = []
        for w, mode in entry.items():
            if already is not None and w in already:
                # Already notified through the data table; still consume the watch.
                if mode & STANDARD:
                    standard_only.append(w)
                continue
            fired[w] = mode
            if mode & STANDARD:
                standard_only.append(w)
        for w in standard_only:
            mode = entry[w] & ~STANDARD
            if mode:
                entry[w] = mode
            else:
                del entry[w]
        if not entry:
            del table[path]
        return fired

    # -- introspection (four-letter words) ---------------------------------------------

    def count(self) -> int:
        return sum(len(e) for e in self.data.values()) + sum(len(e) for e in self.child.values())

    def data_watch_paths(self) -> dict[str, list[Watcher]]:
        return {p: list(e) for p, e in self.data.items()}
