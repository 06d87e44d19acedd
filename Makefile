# The two commands: `make run` starts the whole local stack, `make test` passes the tests.
# `make fleet`: the same stack with etcd and three proxy replicas on it (ports 8080/8180/8280).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev

.PHONY: run fleet test system-deps lint typecheck pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP_RUN): pyproject.toml setup.py | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[demo]'
	touch $@

$(STAMP_DEV): pyproject.toml setup.py | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@ $(STAMP_RUN)

run: $(STAMP_RUN)
	$(BIN)/python -m stack

fleet: $(STAMP_RUN)
	@command -v etcd >/dev/null || { echo "make fleet needs etcd: apt-get install etcd-server (or run make system-deps as root)" >&2; exit 1; }
	$(BIN)/python -m stack fleet

test: $(STAMP_DEV) system-deps lint typecheck pytest

system-deps:
	@bash .ci/system-deps

lint: $(STAMP_DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP_DEV)
	$(BIN)/mypy

# The hot path's tests run twice where it is compiled: once compiled (the whole suite), once on
# its Python source (STRANGLER_NO_EXTENSIONS=1, only the hot path's packages: about a minute).
HOT_PATH_TESTS := tests/proxy/http tests/proxy/dataplane tests/proxy/routing tests/proxy/migration \
	tests/proxy/observe tests/proxy/test_speedups.py

pytest: $(STAMP_DEV)
	$(BIN)/pytest $(PYTEST_ARGS)
	@if [ "$$($(BIN)/python -c 'import proxy; print(proxy.HOT_PATH_MODE)')" = compiled ]; then \
		echo "again on the hot path's Python source (STRANGLER_NO_EXTENSIONS=1):"; \
		STRANGLER_NO_EXTENSIONS=1 $(BIN)/pytest $(HOT_PATH_TESTS); \
	fi

bench: $(STAMP_DEV)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
