# One command per chore. The README names the two a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -c1-12)

.PHONY: setup demo demo-next-day run test test-fast lint typecheck check format lock specs verify clean bench

## setup: virtual environment with the pinned runtime and development requirements (uv: seconds, not minutes)
setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { echo "Python 3.11 is required (set PYTHON=python3.11)"; exit 1; }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.8
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.txt -r requirements-dev.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	$(BIN)/python -m compileall -q -j 0 plugins transforms units dags > /dev/null
	@rm -f $(VENV)/.installed-* && touch $@

## demo: make the monitoring unit, run the air_quality_hourly DAG in Airflow, print the release
demo: setup
	$(BIN)/datashare demo

## demo-next-day: append a day of observations to the unit, then run the DAG again (gives the next version)
demo-next-day: setup
	$(BIN)/datashare demo --next-day

## test: the whole suite (PostgreSQL and MariaDB tests skip with a reason when the servers are absent)
test: setup
	$(BIN)/pytest

## test-fast: everything except the dag.test() runs and the real-scheduler suite
test-fast: setup
	$(BIN)/pytest -m "not airflow and not scheduler"

## bench: release pipeline vs naive path vs database floors, 5 M and 20 M rows, then OData on 1 M rows (~40 min;
##        writes bench/results/); BENCH_ARGS=--odata-only for the OData section alone; the 5 M-row release also runs
##        through the real scheduler (bench/scheduler.py; --no-scheduler skips it)
bench: setup
	$(BIN)/python bench/run.py $(BENCH_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## typecheck: mypy over the engine, transforms and unit simulators (configured in pyproject.toml)
typecheck: setup
	$(BIN)/mypy

## check: what CI runs before the tests
check: lint typecheck

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## lock: re-resolve requirements.in (runtime, the image) and requirements-dev.in (tests, tools; constrained by
##       the runtime pins) into requirements.txt and requirements-dev.txt
lock: setup
	$(BIN)/uv pip compile requirements.in --python-version 3.11 -o requirements.txt
	$(BIN)/uv pip compile requirements-dev.in --python-version 3.11 -o requirements-dev.txt

specs: setup
	$(BIN)/datashare specs

verify: setup
	$(BIN)/datashare verify

## clean: remove var/ (units, releases, SQL share, Airflow home of the demo)
clean:
	rm -rf var
