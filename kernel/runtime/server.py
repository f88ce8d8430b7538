"""Run one standalone server: plugins, storage, the commit pump, timers, transports."""

from __future__ import annotations

import logging
import signal
from collections.abc import Sequence
from typing import Any

import anyio
import pluggy

from kernel.acl import AuthProvider
from kernel.clock import SystemClock
from kernel.config import ConfigError, ServerConfig
from kernel.core import Kernel
from kernel.plugins import plugin_manager
from kernel.runtime.ensemble import Replicator, check_replicated_storage
from kernel.storage import Storage
from kernel.tracing import Tracer
from kernel.txn import Txn

log = logging.getLogger(__name__)


class Server:
    """A kernel plus the plugins the config selects, run on anyio."""

    def __init__(self, config: ServerConfig, pm: pluggy.PluginManager | None = None) -> None:
        self.config = config
        self.pm = pm or plugin_manager()
        storage: Storage | None = self.pm.hook.zk_storage(config=config)
        if storage is None:
            raise ConfigError(f"no storage plugin provides kernel.storage={config.storage!r}")
        self.storage = storage
        self.replicator: Replicator | None = None
        if config.replicated:
            check_replicated_storage(storage).replay_log = False
        providers: list[AuthProvider] = [
            p for group in self.pm.hook.zk_auth_providers(config=config) for p in group]
        self._wake_event: anyio.Event | None = None
        self._pump_scheduled = False
        on_commit = self._on_commit if self.pm.hook.zk_on_commit.get_hookimpls() else None
        on_session = (self._on_session
                      if self.pm.hook.zk_on_session_created.get_hookimpls()
                      or self.pm.hook.zk_on_session_closed.get_hookimpls() else None)
        self.kernel = Kernel(config, storage, providers, SystemClock(), wake=self._wake,
                             on_commit=on_commit, on_session=on_session,
                             tracer=Tracer(config.tracing),
                             server_id=config.server_id if config.replicated else 1,
                             replicated=config.replicated)
        if config.replicated:
            self.replicator = Replicator(config, self.kernel,
                                         check_replicated_storage(storage), SystemClock())
        self.kernel.write_observers = [
            o for group in self.pm.hook.zk_write_observers(kernel=self.kernel, config=config)
            for o in group]
        self.transports: Sequence[Any] = [
            t for group in self.pm.hook.zk_transports(kernel=self.kernel, config=config)
            for t in group]
        if not self.transports:
            raise ConfigError(f"no transport plugin enabled by kernel.transports="
                              f"{','.join(config.transports)}")
        self.ports: list[int] = []

    def _on_commit(self, txn: Txn) -> None:
        self.pm.hook.zk_on_commit(txn=txn)

    def _on_session(self, sid: int, created: bool, expired: bool) -> None:
        if created:
            sess = self.kernel.sessions.get(sid)
            self.pm.hook.zk_on_session_created(session_id=sid,
                                               timeout_ms=sess.timeout if sess else 0)
        else:
            self.pm.hook.zk_on_session_closed(session_id=sid, expired=expired)

    # -- the commit pump ---------------------------------------------------------------

    def _wake(self) -> None:
        """The kernel has new proposals. Non-blocking storage: flush on the next loop
        turn (one batch per turn). Blocking storage: wake the pump task. Ensemble: Zab
        takes the batch."""
        if self.replicator is not None:
            self.replicator.wake()
            return
        if self.storage.blocking:
            if self._wake_event is not None:
                self._wake_event.set()
            return
        if not self._pump_scheduled:
            self._pump_scheduled = True
            import asyncio

            asyncio.get_running_loop().call_soon(self._pump_once)

    def _pump_once(self) -> None:
        self._pump_scheduled = False
        batch = self.kernel.take_batch()
        if batch:
            with self.kernel.tracer.span("persist", len(batch)):
                self.storage.append(batch)
            self.kernel.durable(batch)

    async def _blocking_pump(self) -> None:
        # Group commit: while one batch syncs in a worker thread, new proposals gather
        # into the next batch.
        while True:
            self._wake_event = anyio.Event()
            batch = self.kernel.take_batch()
            if not batch:
                await self._wake_event.wait()
                continue
            with self.kernel.tracer.span("persist", len(batch)):
                await anyio.to_thread.run_sync(self.storage.append, batch)
            self.kernel.durable(batch)

    # -- timers ------------------------------------------------------------------------

    async def _session_timer(self) -> None:
        tick = max(0.01, min(self.config.tick_time / 1000 / 2, 0.5))
        while True:
            await anyio.sleep(tick)
            self.kernel.tick()

    async def _reaper(self) -> None:
        interval = max(0.05, self.config.container_check_interval_ms / 1000)
        per_run = max(1, int(self.config.container_max_per_minute * interval / 60))
        while True:
            await anyio.sleep(interval)
            self.kernel.reap(per_run)

    async def run(self, ready: Any = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            async with anyio.create_task_group() as tg:
                if self.replicator is not None:
                    await self.replicator.run(tg)
                elif self.storage.blocking:
                    tg.start_soon(self._blocking_pump)
                tg.start_soon(self._session_timer)
                tg.start_soon(self._reaper)
                for t in self.transports:
                    port = await tg.start(t.serve)
                    self.ports.append(port)
                ready.started(self.ports)
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for sig in signals:
                        log.info("received %s, shutting down", signal.Signals(sig).name)
                        tg.cancel_scope.cancel()
                        break
        finally:
            if self.replicator is not None:
                await self.replicator.close()
            self.storage.close()


def run_server(config: ServerConfig) -> None:
    """Run until SIGTERM/SIGINT, on uvloop when available."""
    server = Server(config)
    try:
        import uvloop  # noqa: F401

        options = {"use_uvloop": True}
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        options = {}
    anyio.run(server.run, backend="asyncio", backend_options=options)
