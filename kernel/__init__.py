"""zkernel: a ZooKeeper-compatible coordination service built as a microkernel.

Plugins import the public API from ``kernel.api``.
"""

__version__ = "0.1.0"
