# One command installs everything, one runs the tests. Use inside a virtual environment:
#   python3 -m venv .venv && . .venv/bin/activate && make install && make test
PYTHON ?= python3
PIP = $(PYTHON) -m pip

.PHONY: install test lint bench

install:
	# torch first, pinned to the CPU build on this machine: anything that later asks for
	# torch finds it satisfied instead of pulling CUDA wheels.
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[dev,postgres]'

test:
	$(PYTHON) -m pytest -q

lint:
	$(PYTHON) -m ruff check src tests benchmarks

bench:
	$(PYTHON) benchmarks/bench_decode.py
	$(PYTHON) benchmarks/bench_multiturn.py
