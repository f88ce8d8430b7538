"""The tracing seam: each pipeline stage opens an OpenTelemetry span when tracing is on.

With ``kernel.tracing=true`` in zoo.cfg (or an OpenTelemetry SDK configured by the
process) spans go through the OpenTelemetry API; otherwise ``span`` returns a shared
no-op context manager so the hot path pays one attribute check and nothing more.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

_NOOP: AbstractContextManager[None] = contextlib.nullcontext()


class Tracer:
    """Stage spans named ``zkernel.<stage>`` with the opcode as an attribute."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._tracer: Any = None
        if enabled:
            from opentelemetry import trace

            self._tracer = trace.get_tracer("zkernel")

    def span(self, stage: str, op: int) -> AbstractContextManager[Any]:
        if not self.enabled:
            return _NOOP
        return self._span(stage, op)

    @contextlib.contextmanager
    def _span(self, stage: str, op: int) -> Iterator[Any]:
        with self._tracer.start_as_current_span(f"zkernel.{stage}",
                                                attributes={"zk.op": op}) as s:
            yield s
