# exhale: `make run` serves the app with its worker; `make test` lints and runs every test.
# Each target does its own set-up from a fresh clone on a machine with python3 and make.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

.PHONY: run test lint format bench install clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/exhale run

lint: $(STAMP)
	$(BIN)/ruff check app devices referral tests migrations bench
	$(BIN)/ruff format --check app devices referral tests migrations bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix app devices referral tests migrations bench
	$(BIN)/ruff format app devices referral tests migrations bench

test: lint
	@$(BIN)/pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$rc

# Not part of `make test`: each benchmark makes a throwaway PostgreSQL database (created and
# dropped on BENCH_DATABASE_URL's server, default postgres@127.0.0.1:5432) and prints its figures
# and the machine. `make bench` runs the four; `make bench BENCH=ingest` one (ingest, delivery,
# bridge, measures; also `ceiling`, not in the four), with its options in BENCH_ARGS; QUICK=1
# makes every run short.
BENCHMARKS := ingest delivery bridge measures
bench: $(STAMP)
	@set -e; for name in $(or $(BENCH),$(BENCHMARKS)); do \
		echo "== bench $$name"; \
		quick="$(if $(QUICK),--quick,)"; \
		if [ $$name = measures ]; then quick="$(if $(QUICK),--pregnancies 20000 --repeat 1,)"; fi; \
		$(BIN)/python bench/bench_$$name.py $$quick $(BENCH_ARGS); \
	done

clean:
	rm -rf $(VENV) var/*.db var/*.db-* .mypy_cache .ruff_cache
