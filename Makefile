# The two commands of the quick start: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup run test test-all clean

setup: $(VENV)/.installed

# torch==2.13.0 is pinned in pyproject.toml; on the project's CPU machines pip takes the local CPU wheel.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

# The whole DAG on the bundled demo data (demo/), artifacts in ./lmpipe-data, Prefect's ephemeral SQLite server.
run: setup
	$(BIN)/lmpipe run pipeline --preset demo

# The default test set (not slow/gpu/server). Exit code 5 ("no tests collected") is a failure, not a pass.
test: setup
	@$(BIN)/python -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

test-all: setup
	@$(BIN)/python -m pytest -q -m ""; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

clean:
	rm -rf lmpipe-data
