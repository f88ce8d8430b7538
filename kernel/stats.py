"""Server counters read by the four-letter words and metrics."""

from __future__ import annotations


class LatencyStats:
    """min / avg / max in ms, as ``srvr`` prints them."""

    __slots__ = ("count", "total", "min", "max")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.total = 0
        self.min = 0
        self.max = 0

    def add(self, ms: int) -> None:
        if self.count == 0 or ms < self.min:
            self.min = ms
        if ms > self.max:
            self.max = ms
        self.count += 1
        self.total += ms

    def add_zeros(self, n: int) -> None:
        """``n`` requests answered within the same millisecond (reads)."""
        if n <= 0:
            return
        self.min = 0
        self.count += n

    @property
    def avg(self) -> float:
        return self.total / self.count if self.count else 0.0


class ServerStats:
    """Counters of one server; transports bump the packet counters."""

    def __init__(self, start_mono_ms: int) -> None:
        self.start_mono_ms = start_mono_ms
        self.packets_received = 0
        self.packets_sent = 0
        self.latency = LatencyStats()
        self.auth_failed = 0
        self.last_response_size = -1
        self.min_response_size = -1
        self.max_response_size = -1
        self.commits = 0
        self.fsyncs = 0

    def reset(self) -> None:
        self.packets_received = 0
        self.packets_sent = 0
        self.latency.reset()
        self.last_response_size = self.min_response_size = self.max_response_size = -1
