# The two commands of the README: `make serve` and `make test`.
PYTHON ?= python3
CONFIG ?= deploy/zoo.cfg

.PHONY: install install-test serve test lint bench-deps

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
