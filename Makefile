# ctid — two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

FUZZ_SECONDS ?= 60

.PHONY: run test lint typecheck pytest bench bench-quick fuzz clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,postgres]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/ctid run --config examples/demo.toml

lint: $(STAMP)
	$(BIN)/ruff check ctid tests bench fuzz
	$(BIN)/ruff format --check ctid tests bench fuzz

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python -m bench.run --full

bench-quick: $(STAMP)
	$(BIN)/python -m bench.run --quick

fuzz: $(STAMP)
	$(BIN)/pip install --quiet atheris
	mkdir -p var/fuzz-corpus
	$(BIN)/python fuzz/fuzz_codec.py var/fuzz-corpus -max_total_time=$(FUZZ_SECONDS) -max_len=4096

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
