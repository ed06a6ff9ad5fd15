# Two commands for a fresh machine with Python 3.11+ and make:
#   make run    install, then serve with demo data at http://127.0.0.1:8000 (SQLite)
#   make test   install, then ruff, mypy and pytest (PostgreSQL too when
#               QIANBAO_TEST_DATABASE_URL is set; the browser tests when chromium is present)
# Every install comes from uv.lock (exact versions, checked by hash); `make lock` upgrades it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# uv syncs into the project's .venv; --locked refuses a lock that pyproject.toml no longer
# matches (instead of quietly re-resolving), --inexact keeps the uv and pip that set it up.
UV_SYNC := $(BIN)/uv sync --locked --inexact --extra dev --python $(BIN)/python --quiet

.PHONY: run test lint typecheck pytest install lock i18n-extract clean bench marketplace

$(STAMP): pyproject.toml uv.lock requirements/uv.txt requirements/testdata.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-deps --require-hashes -r requirements/uv.txt
	$(UV_SYNC)
	# The chip reader's pyscard has no Linux wheel: it is built only where swig and the
	# PC/SC headers are (CI installs them); elsewhere its tests skip and say why.
	if command -v swig >/dev/null 2>&1 && [ -e /usr/include/PCSC/winscard.h ]; then $(UV_SYNC) --extra reader; else echo 'note: swig or libpcsclite-dev missing: the chip reader (pyscard) is not installed and its tests will skip'; fi
	$(BIN)/pip download --quiet --no-deps --no-binary face_recognition,insightface --require-hashes -r requirements/testdata.txt -d var/testdata || echo 'warning: face test photos not fetched into var/testdata; the tests that need them will skip'
	touch $(STAMP)

install: $(STAMP)

# Upgrade every dependency to the newest release pyproject.toml allows, re-hashing the lock.
lock:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-deps --require-hashes -r requirements/uv.txt
	$(BIN)/uv lock --upgrade --python $(BIN)/python

run: $(STAMP)
	$(BIN)/qianbao serve --demo

test: $(STAMP) lint typecheck pytest

# The demo marketplace (examples/marketplace) at http://127.0.0.1:8001 beside the demo
# server at http://127.0.0.1:8000, which registers it as an OpenID Connect client and as
# a merchant app of the trade API; the worker delivers the payment notifications.
# Ctrl-C stops all three.
marketplace: $(STAMP)
	$(BIN)/qianbao serve --demo & server=$$!; \
	(sleep 5; exec env QIANBAO_DEMO=true $(BIN)/qianbao worker) & worker=$$!; \
	trap 'kill $$server $$worker 2>/dev/null' EXIT INT TERM; \
	MARKETPLACE_DATABASE=var/marketplace.db PYTHONPATH=examples/marketplace $(BIN)/python -m marketplace

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

i18n-extract: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k N_ --no-location --sort-output -o qianbao/i18n/messages.pot .
	$(BIN)/pybabel update -i qianbao/i18n/messages.pot -d qianbao/i18n -D messages --no-fuzzy-matching --ignore-obsolete

bench: $(STAMP)
	$(BIN)/python bench/signup_http.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
