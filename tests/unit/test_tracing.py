"""The tracing seam: with kernel.tracing on, each pipeline stage opens a span."""

from __future__ import annotations

import pytest

from kernel.tracing import Tracer

sdk = pytest.importorskip("opentelemetry.sdk.trace")
export = pytest.importorskip("opentelemetry.sdk.trace.export")
in_memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")


def test_disabled_tracer_opens_no_span() -> None:
    t = Tracer(enabled=False)
    with t.span("prep", 1) as s:
        assert s is None


def test_enabled_tracer_records_stage_spans() -> None:
    from opentelemetry import trace

    exporter = in_memory.InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(export.SimpleSpanProcessor(exporter))
    tracer = Tracer(enabled=True)
    # Bind the tracer to our provider without touching the process-global one.
    tracer._tracer = provider.get_tracer("zkernel")
    with tracer.span("prep", 15):
        with tracer.span("apply", 15):
            pass
    names = [s.name for s in exporter.get_finished_spans()]
    assert names == ["zkernel.apply", "zkernel.prep"]
    assert exporter.get_finished_spans()[1].attributes["zk.op"] == 15
    assert trace is not None


class _Conn:
    def __init__(self) -> None:
        from kernel.records import Id

        self.ids = [Id("ip", "127.0.0.1")]
        self.remote_address = "127.0.0.1"
        self.session = None
        self.replies: list[tuple[int, int]] = []

    def notify(self, event_type: int, path: str, zxid: int) -> None:
        pass

    def send_response(self, xid: int, zxid: int, err: int, op: int, value: object) -> None:
        self.replies.append((xid, err))

    def session_established(self, session: object) -> None:
        pass

    def session_refused(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_write_pipeline_opens_prep_and_apply_spans() -> None:
    from kernel.clock import ManualClock
    from kernel.config import ServerConfig
    from kernel.core import Kernel
    from kernel.protocol import OpCode
    from kernel.records import ACL, CreateRequest
    from plugins.storage_memory import MemoryStorage

    exporter = in_memory.InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(export.SimpleSpanProcessor(exporter))
    tracer = Tracer(enabled=True)
    tracer._tracer = provider.get_tracer("zkernel")
    k = Kernel(ServerConfig(storage="memory"), MemoryStorage(), [], ManualClock(),
               tracer=tracer)
    conn = _Conn()
    k.register_connection(conn)  # type: ignore[arg-type]
    k.connect(conn, 0, 10000, 0, b"\0" * 16)  # type: ignore[arg-type]
    k.durable(k.take_batch())
    assert conn.session is not None
    k.submit(conn, 1, OpCode.CREATE,  # type: ignore[arg-type]
             CreateRequest("/t", b"x", [ACL(31, "world", "anyone")], 0))
    k.durable(k.take_batch())
    assert conn.replies == [(1, 0)]
    names = [s.name for s in exporter.get_finished_spans()]
    assert "zkernel.prep" in names
    assert names.count("zkernel.apply") == 2  # createSession + create
