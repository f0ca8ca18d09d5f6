# The two commands a newcomer needs: `make demo` and `make test`. Both set everything up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: demo test lint install bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres,ray]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/eventactors demo --store bank.db

lint: $(STAMP)
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks
	$(BIN)/mypy

test: lint
	bash scripts/ensure-postgres.sh
	bash scripts/ensure-debian-tool.sh /usr/bin/chromium chromium chromium-driver
	bash scripts/ensure-debian-tool.sh /usr/sbin/nats-server nats-server
	$(BIN)/python -m pytest

# The benchmark harness (about 8 minutes): writes benchmarks/results.{json,md} and throughput.png.
$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres,ray,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	bash scripts/ensure-postgres.sh
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) bank.db bank.db-wal bank.db-shm
