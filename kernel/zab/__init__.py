"""Sans-I/O Zab. ``broadcast`` is the leader's proposal/ACK/commit core; election,
discovery and synchronization join it for ensembles."""

from kernel.zab.broadcast import Broadcast, Commit, Persist, QuorumVerifier

__all__ = ["Broadcast", "Commit", "Persist", "QuorumVerifier"]
