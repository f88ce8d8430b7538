"""The anyio runtime: wires the sans-I/O kernel to the event loop, storage and timers."""
