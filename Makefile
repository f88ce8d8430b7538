# The two commands of the README: `make serve` and `make test`.
PYTHON ?= python3
CONFIG ?= deploy/zoo.cfg

.PHONY: install install-test serve test lint differential differential-soak

install:
	$(PYTHON) -m pip install -q -e .

install-test:
	$(PYTHON) -m pip install -q -e '.[test]'

serve: install
	$(PYTHON) -m kernel serve --config $(CONFIG)

test: install-test
	$(PYTHON) -m pytest -q

lint:
	ruff check kernel plugins tests
	mypy kernel

# Differential testing against Apache ZooKeeper 3.8 (Debian `zookeeper`): a fixed
# seed set (also part of `make test`), and a long randomized soak.
differential:
	$(PYTHON) -m pytest tests/differential -q

differential-soak:
	$(PYTHON) -m pytest tests/differential -q -m soak -s
