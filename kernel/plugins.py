"""Loading plugins: every plugin, built-in included, comes through the entry-point group."""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Iterable

import pluggy

from kernel import hookspecs

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "zkernel.plugins"


def plugin_manager(extra: Iterable[object] = (), load_entry_points: bool = True
                   ) -> pluggy.PluginManager:
    """A plugin manager with the hook specs, the installed plugins and ``extra`` ones."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if load_entry_points:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if pm.has_plugin(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception:
                log.exception("cannot load plugin %s (%s)", ep.name, ep.value)
                raise
            pm.register(plugin, name=ep.name)
    for p in extra:
        pm.register(p)
    return pm
