# Two commands for a fresh machine with Python 3.11+ and make:
#   make run    install, then serve with demo data at http://127.0.0.1:8000 (SQLite)
#   make test   install, then ruff, mypy and pytest (PostgreSQL too when
#               QIANBAO_TEST_DATABASE_URL is set; the browser tests when chromium is present)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest install i18n-extract clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip download --quiet --no-deps --no-binary face_recognition,insightface -d var/testdata face_recognition==1.3.0 insightface==0.7.3 || echo 'warning: face test photos not fetched into var/testdata; the tests that need them will skip'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/qianbao serve --demo

test: $(STAMP) lint typecheck pytest

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
