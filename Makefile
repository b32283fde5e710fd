# Two commands do everything on a fresh Debian 12 machine: `make demo` and `make test`.
# Every step is idempotent; a second run only re-checks.

VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test golden faults soak lint system venv clean bench bench-quick fuzz fleet

system:
	@bash scripts/install-system-deps.sh

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): setup.cfg pyproject.toml | $(PY)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

venv: system $(STAMP)

# the terminal daemon at a bus validator: pcscd + vpcd, the reference platform, `sscard run`
demo: venv
	$(VENV)/bin/sscard demo --daemon

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# every sscard command the suite runs is checked against its recorded output (tests/golden.py);
# the end-to-end tests and the rest run side by side (tests/parallel.py)
test: venv lint
	SSCARD_GOLDEN=check SSCARD_TEST_POSTGRES=required SSCARD_TEST_BROWSER=required $(PY) tests/parallel.py

# the long fault campaigns (tests/faults, README "Faults"), 1,000 random presentations to
# `sscard run`, 10,000 taps on 8 readers with 312 SIGKILLs (about 31 minutes; SSCARD_KILLS_TAPS
# shortens it), 2,000 fares taken by `sscard run` through pcscd under tearing and SIGKILLs and
# cleared by the platform, 10,000 fares with tearing and kills in-process, and 10,000 purchases
# cleared by the platform on SQLite and PostgreSQL; their short forms are in `test`, whose
# golden outputs they keep
faults: venv
	SSCARD_FAULTS=long SSCARD_GOLDEN=off SSCARD_DAEMON_CYCLES=$${SSCARD_DAEMON_CYCLES:-1000} \
		SSCARD_FARE_DAEMON_TAPS=$${SSCARD_FARE_DAEMON_TAPS:-2000} \
		$(PY) -m pytest -x -q -s tests/faults tests/e2e/test_daemon_cycles_e2e.py --timeout=0
	SSCARD_FARE_PURCHASES=$${SSCARD_FARE_PURCHASES:-10000} $(PY) -m pytest -x -q -s \
		tests/emulated/test_fare_campaign.py --timeout=0
	SSCARD_CLEARING_PURCHASES=$${SSCARD_CLEARING_PURCHASES:-10000} SSCARD_TEST_POSTGRES=required \
		$(PY) -m pytest -x -q tests/emulated/test_platform_clearing.py -k campaign --timeout=0

# `sscard run` at a tap a second for an hour (not in CI; SOAK_SECONDS shortens it): resident
# memory and open files printed every minute
SOAK_SECONDS ?= 3600
soak: venv
	SSCARD_SOAK_SECONDS=$(SOAK_SECONDS) SSCARD_GOLDEN=off $(PY) -m pytest -x -q -s \
		tests/faults/test_soak.py --timeout=0

# re-record those outputs (then review `git diff tests/golden`)
golden: venv
	SSCARD_GOLDEN=record $(PY) -m pytest

# every benchmark in bench/, one table, each row beside its goal (issue 16); the full run takes
# about 3 minutes on 2 CPUs, most of it the deny list at 10 M entries (about 2 GB of disk and
# of memory); BENCH_ARGS="--only qr sm2" picks some
bench: venv
	$(PY) bench/run.py --json bench/results.json $(BENCH_ARGS)

bench-quick: venv
	$(PY) bench/run.py --quick $(BENCH_ARGS)

# a city's fleet against the reference platform on a throwaway PostgreSQL 15 (issue 16): 10,000
# terminals at 1 decision/s for FLEET_SECONDS, the platform SIGKILLed twice; exit 1 if a row was
# lost or doubled (docs/platform-scaling.md; FLEET_ARGS="--terminals 1000" for a smaller city)
FLEET_SECONDS ?= 60
fleet: venv
	$(PY) tools/fleet.py --terminals 10000 --seconds $(FLEET_SECONDS) --kills 2 \
		--json build/fleet.json $(FLEET_ARGS)

# coverage-guided fuzzing with atheris, FUZZ_SECONDS per target (the short form is in `make test`)
FUZZ_SECONDS ?= 60
fuzz: venv
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,fuzz]'
	$(PY) tests/fuzz/run.py --seconds $(FUZZ_SECONDS) $(FUZZ_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
