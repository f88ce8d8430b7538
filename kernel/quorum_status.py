"""What the four-letter words and metrics report about this server's place in the
ensemble. The runtime updates it; transports only read it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class QuorumStatus:
    """Role, epoch and learner counts as ``srvr``/``stat``/``mntr`` show them.

    ``mode`` is ``standalone``, ``leader``, ``follower`` or ``looking`` (not serving);
    ``phase`` is the Zab phase (``election``, ``discovery``, ``synchronization``,
    ``broadcast``).
    """

    mode: str = "standalone"
    phase: str = "broadcast"
    server_id: int = 1
    leader_id: int = 0
    epoch: int = 0
    quorum_size: int = 1
    learners: int = 0
    synced_followers: int = 0
    synced_non_voting_followers: int = 0
    synced_observers: int = 0
    pending_syncs: int = 0
    last_proposal_size: int = -1
    min_proposal_size: int = -1
    max_proposal_size: int = -1

    @property
    def peer_state(self) -> str:
        """ZooKeeper's ``zk_peer_state``, e.g. ``leading - broadcast``."""
        state = {"leader": "leading", "follower": "following", "looking": "looking",
                 "standalone": "standalone"}.get(self.mode, self.mode)
        if self.mode == "looking":
            return state
        return f"{state} - {self.phase}"
