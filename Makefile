# One entry point per task. `make run` and `make test` are the README's two commands.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test check lint typecheck unit integration soak bench clean

$(BIN)/callpulse: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: $(BIN)/callpulse  ## install, then run everything on this machine
	$(BIN)/callpulse dev

test: $(BIN)/callpulse  ## install, then lint, type-check and run every test (real broker included)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

check: lint typecheck
lint: $(BIN)/callpulse
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
typecheck: $(BIN)/callpulse
	$(BIN)/mypy
unit: $(BIN)/callpulse
	$(BIN)/python -m pytest tests/unit
integration: $(BIN)/callpulse
	$(BIN)/python -m pytest tests/integration
soak: $(BIN)/callpulse  ## the long runs `make test` leaves out: property soaks, API fuzz, 200k backlog
	$(BIN)/python -m pytest -m slow
bench: $(BIN)/callpulse  ## issue 8's benchmark table (minutes; BENCH_ARGS=--full for the issue's sizes)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .callpulse-dev .bench
