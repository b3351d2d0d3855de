# One-command set-up: `make fit` and `make test` create .venv/ from the pinned files if needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYTHONWARNINGS ?= ignore::FutureWarning:arviz

.PHONY: fit test test-slow bench browser clean-venv

# The pinned dependencies, then this project as an editable package (`import reanalysis`
# from anywhere, the `reanalysis` command); the scripts also run without the second step.
$(STAMP): requirements.txt requirements-lock.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-lock.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

fit: $(STAMP)
	$(PY) scripts/fit.py --publish-figures figures

# Two test processes (pytest-xdist), each running whole files, so that the tests use both
# cores (docs/decisions/test-tiers.md); TEST_WORKERS=0 runs them in one.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" -n $(TEST_WORKERS) --dist loadfile

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

# Chromium for the report's browser test (tests/test_report.py skips, saying so, without it):
# installed with apt-get when missing and this is root; otherwise only a note.
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium (apt-get)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; } \
			|| echo "chromium could not be installed: the report's browser test will be skipped"; \
	else \
		echo "chromium not found (installing it needs root and apt-get): the report's browser test will be skipped"; \
	fi

bench: $(STAMP)
	$(PY) benchmarks/bench_fit.py

clean-venv:
	rm -rf $(VENV)
