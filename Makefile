# ctid — two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

FUZZ_SECONDS ?= 60
SOAK_MINUTES ?= 10

.PHONY: run test test-tools lint typecheck pytest bench bench-quick bench-metrics soak dashboards fuzz clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,postgres]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/ctid run --config examples/demo.toml

lint: $(STAMP)
	$(BIN)/ruff check ctid tests bench fuzz deploy scripts
	$(BIN)/ruff format --check ctid tests bench fuzz deploy scripts

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy --strict deploy/asterisk/measure_eventfilter.py

pytest: $(STAMP)
	$(BIN)/pytest

# Debian tools and local services the tests use (promtool, amtool, mosquitto, PostgreSQL...).
test-tools:
	sh scripts/install-test-tools.sh
	sh scripts/ensure-prometheus.sh
	sh scripts/ensure-mosquitto.sh
	sh scripts/ensure-postgres.sh

test: test-tools lint typecheck pytest

dashboards: $(STAMP)
	$(BIN)/python -m scripts.dashboards

bench-metrics: $(STAMP)
	$(BIN)/python -m bench.metrics_render

bench: $(STAMP)
	$(BIN)/python -m bench.run --full

bench-quick: $(STAMP)
	$(BIN)/python -m bench.run --quick

# The daemon for SOAK_MINUTES against a simulated floor at twice a 5,000-seat centre's peak,
# then its store checked call by call (bench/soak/); figures in bench/results/soak.json.
soak: $(STAMP)
	$(BIN)/python -m bench.soak --minutes $(SOAK_MINUTES)

fuzz: $(STAMP)
	$(BIN)/pip install --quiet atheris
	mkdir -p var/fuzz-corpus
	$(BIN)/python fuzz/fuzz_codec.py var/fuzz-corpus -max_total_time=$(FUZZ_SECONDS) -max_len=4096

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
