"""Differential tester: the same operation sequences against Apache ZooKeeper 3.8 and
zkernel, comparing everything a client observes (see normalize.py for what may differ)."""
