# Two commands do all the set-up on a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO_DIR ?= var/demo
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: run test install install-test browser screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --compile -e '.[test]'
	$(BIN)/python -m compileall -q pos_loyalty web drivers migrations  # an editable install compiles none of our own modules
	touch $@

install: $(VENV)/.installed

## run: install, create the demo shop on SQLite (once) and serve it under waitress
run: install
	POS_LOYALTY_DATA_DIR=$(DEMO_DIR) $(BIN)/pos-loyalty init
	POS_LOYALTY_DATA_DIR=$(DEMO_DIR) $(BIN)/pos-loyalty demo --if-empty
	POS_LOYALTY_DATA_DIR=$(DEMO_DIR) $(BIN)/pos-loyalty serve --host $(HOST) --port $(PORT)

## browser: Debian's Chromium for the panel tests (needs root or sudo; skipped if present)
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; \
	fi

## test: install everything the suite needs and run it against SQLite and PostgreSQL
test: install browser
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

## screenshots: run the browser tests, keeping their pictures in docs/screenshots (the README's)
screenshots: install browser
	CI=true POS_LOYALTY_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/browser  # (CI=true: no Chromium fails, not skips)

clean:
	rm -rf $(VENV) var build *.egg-info
