# The two set-up commands: `make run` and `make test`. Everything else is a helper of theirs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-tools test-long fuzz install lint typecheck bench bench-deps clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench,cluster]'
	touch $(STAMP)

install: $(STAMP)

## Start the embedded service on http://127.0.0.1:8000 (data in ./data).
run: $(STAMP)
	$(BIN)/photostore serve

## The Debian tools tests/deploy runs (kubectl for `kubectl kustomize`, promtool) and the browser tests'
## chromium (Playwright drives it; it never downloads a browser); needs root.
## The prometheus package may start a server: the tests need only promtool, so none is left running.
test-tools:
	command -v kubectl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends kubernetes-client; }
	command -v promtool >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus && { pkill -x prometheus || true; }; }
	command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }

## Install everything the tests need, then lint, type-check and run the whole suite.
test: $(STAMP) test-tools
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest

## The long runs: many SIGKILLs of a rebalance, the tiering job and the roles; a long schemathesis run.
test-long: $(STAMP)
	PHOTOSTORE_TEST_REBALANCE_KILLS=40 $(BIN)/python -m pytest tests/faults/test_rebalance_kill.py -p no:randomly --timeout=3600
	PHOTOSTORE_TIER_KILLS=50 $(BIN)/python -m pytest tests/engines/test_tiering_sigkill.py -p no:randomly --timeout=3600
	PHOTOSTORE_CRASH_KILLS=50 PHOTOSTORE_CRASH_UPLOADS=2000 $(BIN)/python -m pytest tests/faults/test_role_kills.py \
		-p no:randomly --timeout=3600
	PHOTOSTORE_SCHEMATHESIS_EXAMPLES=500 $(BIN)/python -m pytest tests/e2e/test_openapi_contract.py --timeout=3600

## Fuzz upload validation and EXIF parsing for ten minutes; a crash is saved in tests/fuzz/regressions/.
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz.seeds .fuzz-corpus
	$(BIN)/python -m tests.fuzz.image_harness .fuzz-corpus -max_len=65536 -max_total_time=600 \
		-artifact_prefix=tests/fuzz/regressions/crash-

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

## Benchmarks (not part of the test suite); figures go to docs/benchmarks.md.
bench: $(STAMP)
	$(BIN)/python -m bench.run_all

## The peers the benchmarks run beside photostore (Debian packages; needs root).
bench-deps:
	apt-get install -y nginx-light wrk libvips-tools
	pkill -x nginx || true  # the package may start a system nginx on port 80; the bench runs its own

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
