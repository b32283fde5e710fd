# Two commands do everything on a fresh Debian 12 machine: `make demo` and `make test`.
# Every step is idempotent; a second run only re-checks.

VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test golden lint system venv clean

system:
	@bash scripts/install-system-deps.sh

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): setup.cfg pyproject.toml | $(PY)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

venv: system $(STAMP)

demo: venv
	$(VENV)/bin/sscard demo

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# every sscard command the suite runs is checked against its recorded output (tests/golden.py);
# the end-to-end tests and the rest run side by side (tests/parallel.py)
test: venv lint
	SSCARD_GOLDEN=check SSCARD_TEST_POSTGRES=required SSCARD_TEST_BROWSER=required $(PY) tests/parallel.py

# re-record those outputs (then review `git diff tests/golden`)
golden: venv
	SSCARD_GOLDEN=record $(PY) -m pytest

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
