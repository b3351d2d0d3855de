# One-command set-up: `make fit` and `make test` create .venv/ from the pinned files if needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYTHONWARNINGS ?= ignore::FutureWarning:arviz

.PHONY: fit test test-slow bench clean-venv

$(STAMP): requirements.txt requirements-lock.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-lock.txt
	touch $(STAMP)

fit: $(STAMP)
	$(PY) scripts/fit.py --publish-figures figures

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) benchmarks/bench_fit.py

clean-venv:
	rm -rf $(VENV)
