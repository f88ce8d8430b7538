"""Time sources, injected so that the kernel's cores never read a clock themselves."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Wall time (for ctime/mtime) and monotonic time (for expiry), in milliseconds."""

    def wall_ms(self) -> int: ...

    def mono_ms(self) -> int: ...


class SystemClock:
    """The real clocks."""

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def mono_ms(self) -> int:
        return time.monotonic_ns() // 1_000_000


class ManualClock:
    """A clock a test or simulation advances by hand."""

    def __init__(self, wall: int = 1_700_000_000_000, mono: int = 0) -> None:
        self.wall = wall
        self.mono = mono

    def wall_ms(self) -> int:
        return self.wall

    def mono_ms(self) -> int:
        return self.mono

    def advance(self, ms: int) -> None:
        self.wall += ms
        self.mono += ms
