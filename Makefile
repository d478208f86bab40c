# launchml: `make demo` and `make test` work on a fresh machine (they make .venv first).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)  ## digits as an image folder -> all five stages with the article's CNN
	$(BIN)/launchml quickstart

test: $(STAMP)  ## the whole suite: unit, CLI end-to-end, real server
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" --ignore=tests/e2e

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

bench: $(STAMP)  ## Keras vs plain PyTorch vs launchml on the article's CNN (makes a TF venv)
	$(BIN)/python bench/seed_cnn.py --json bench/out/seed_cnn.json

clean:
	rm -rf quickstart runs bench/out .pytest_cache
