"""Deterministic simulation of a Zab ensemble (issue #5).

``sim.py`` runs N = 3, 5 or 7 ``kernel.zab.peer.ZabPeer`` state machines in one process on
one seeded ``random.Random`` and a simulated millisecond clock (a discrete-event queue;
ties broken by insertion order, so a seed replays exactly). Nothing reads the wall clock
or the global random generator, and every iteration over servers or links is sorted.

What is simulated, per the runtime contract in ``kernel/zab/peer.py``:

* **Runtime.** Each action list is carried out in order. Storage actions (``Persist``,
  ``Truncate``, ``InstallSnapshot``, ``SaveEpochs``) go to a per-server FIFO disk queue;
  each completes after a random delay (occasionally a long stall), then its effect is on
  the simulated disk and ``peer.stored(now)`` is called, once per action, in order.
  Actions after a storage action in the same list wait for it. Runtime models
  (``SimConfig.mode``):

  - ``pipeline`` (default): one FIFO executor per server; a waiting list tail also holds
    back everything emitted after it (the contract as peer.py states it now);
  - ``replicator``: kernel/runtime/ensemble.py's ``Replicator`` as of 33f26f0: one FIFO of
    storage actions and held actions, group commit of consecutive ``Persist``s, a held
    ``Send`` holds later sends to the same peer, but a later ``Deliver`` runs at once,
    ahead of a held one (fails: it applies commits out of order, e.g. seed 144);
  - ``replicator-fixed``: the same with ``Deliver``/``RoleChanged`` kept in order too,
    as the working-tree Replicator now does (``_deferred_state``); in the default suite;
  - ``list``: only the tail of the same list waits (fails the same way).

  ``Deliver`` appends to the server's state machine (a list of ``(zxid, payload)``); the
  ``snapshot`` callback returns it pickled, and ``InstallSnapshot`` replaces it and the log.
* **Network.** As kernel/runtime/links.py: one TCP-like connection per direction
  (``links="directed"``; ``"duplex"``: one per pair). Each is a sequence-numbered channel;
  raw packets get random latency and, by the seed, loss, duplication, reordering and
  resets; the link layer turns any gap, duplicate or reorder (and a lost packet, after a
  retransmission timeout) into a break: both ends get ``link_down``, everything in flight
  on that connection is dropped, and a reconnection later gives the dialler ``link_up``
  (duplex: both ends). Partitions cut sets of servers off for a while (packets lost, no
  reconnection). Servers start with every link down and dial each other.
* **Faults.** Crashes (volatile state and unfinished storage actions are lost; sometimes
  the flushed state machine trails the in-memory one; restart builds a new ``ZabPeer``
  from the disk: epochs, snapshot base, log, ``committed_zxid`` = last applied on disk),
  SIGSTOP-like pauses (inputs queue while paused), partitions, connection resets, and
  faults aimed at the leader (crash it a few ms after a proposal; cut it off with a
  minority while clients still write to it).
* **Clients.** While a server is an established leader, writes (``SetDataTxn`` with a
  unique payload, zxids from ``peer.next_zxid``) are proposed to it; a write is
  *acknowledged* when the leader incarnation that proposed it delivers it.

Checked after every step (``Violation``):

1. agreement / total order: every state machine, of every incarnation, is a prefix of
   one sequence; zxids strictly increase;
2. integrity: every delivered txn was proposed by a leader, with that payload, and is in
   the server's durable log when delivered; no zxid is proposed twice;
3. primary order: an epoch's txns are delivered from its first proposal on without gaps;
   no two leaders reach synchronization in one epoch; a primary (established leader) of
   epoch e holds every txn of an older epoch that is delivered anywhere, ever;
4. acknowledged writes: in the history (log + applied) of every later primary when it
   is established, never truncated, and applied everywhere at the end;
5. liveness: once every fault is healed and every server restarted, within
   ``liveness_ms`` one leader is established, every server is in broadcast, a new write
   commits, and all state machines are equal;
   plus disk invariants: epochs never go back, accepted >= current, the log is strictly
   increasing and contiguous inside an epoch, never above the accepted epoch.

Running:

* ``python -m pytest tests/zab_sim`` — the default suite (``DEFAULT_SEEDS`` seeds plus
  the regression seeds in ``test_zab_sim.py``);
* ``python -m pytest tests/zab_sim -m soak`` — thousands of seeds
  (``ZAB_SIM_SOAK=N`` seeds from ``ZAB_SIM_SOAK_START``, default 3000 from 100000);
* ``ZAB_SIM_SEED=1234 python -m pytest tests/zab_sim -k env_seed`` — one seed, as a
  failure message prints it; ``python -m tests.zab_sim.sim 1234 --trace`` prints the
  seed's whole event trace.

A seed fixes everything (N, timings, fault rates, runtime model, schedule):
``sim.config_for_seed``.
"""
