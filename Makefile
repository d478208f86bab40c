# launchml: `make demo` and `make test` work on a fresh machine (they make .venv first).
# Installs use constraints.txt (the exact versions CI tested); `make upgrade-check` tries
# the newest ones in a separate venv.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
CONSTRAINTS := constraints.txt
# stamps: launchml, its core dependencies and the server (the demo, whose next step is
# `launchml serve`); + [text] + test/lint tools
CORE := $(VENV)/.installed-core
DEV := $(VENV)/.installed-dev
UPGRADE_VENV := .venv-upgrade
# Flower pins an older web stack than [serve]: its own environment (launchml federate)
FED_VENV := .venv-federated
FED := $(FED_VENV)/.installed
PYTEST_ARGS ?=

# pytest exits 5 when it collected no tests: say so, and fail
define pytest
	$(BIN)/python -m pytest $(1) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make: pytest collected no tests" >&2; fi; exit $$rc
endef

.PHONY: install install-core install-federated demo test test-fast test-gpu lint bench constraints \
	upgrade-check clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(CORE): pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP) install -q -c $(CONSTRAINTS) -e '.[serve]'
	touch $@

$(DEV): pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP) install -q -c $(CONSTRAINTS) -e '.[dev]'
	touch $(CORE) $@

install: $(DEV)  ## everything: launchml, the serve and text extras, test and lint tools

install-core: $(CORE)  ## launchml with the server, without the text extra and test tools

demo: $(CORE)  ## digits as an image folder -> all five stages with the article's CNN
	$(BIN)/launchml quickstart

# .venv's packages come after .venv-federated's own on its path (a .pth file): torch and
# its CUDA libraries (6 GB, the same pins) are not installed twice; pip installs only what
# Flower pins differently (fastapi, starlette, uvicorn, typer, protobuf, ray, ...), and
# those shadow .venv's. A second copy filled the disk of a CI machine.
# Made from .venv's own python (compiled packages must match it); an older
# .venv-federated without the shared .pth, or of another python version, is made again.
SITE := import sysconfig; p = sysconfig.get_paths(); print(p["purelib"])
$(FED): pyproject.toml constraints-federated.txt $(CORE)
	@if [ -x $(FED_VENV)/bin/python ] && { [ "$$($(FED_VENV)/bin/python -V)" != "$$($(BIN)/python -V)" ] \
		|| [ ! -f "$$($(FED_VENV)/bin/python -c '$(SITE)')/launchml-shared.pth" ]; }; then \
		echo "make: $(FED_VENV) is of another python or shares no packages: made again"; \
		rm -rf $(FED_VENV); fi
	test -x $(FED_VENV)/bin/python || $(BIN)/python -m venv $(FED_VENV)
	{ $(BIN)/python -c '$(SITE)'; $(BIN)/python -c 'import sysconfig; p = sysconfig.get_paths(); \
		p["platlib"] != p["purelib"] and print(p["platlib"])'; } \
		> "$$($(FED_VENV)/bin/python -c '$(SITE)')/launchml-shared.pth"
	$(FED_VENV)/bin/python -m pip install -q -c constraints-federated.txt -e '.[federated]'
	touch $@

install-federated: $(FED)  ## Flower in .venv-federated (launchml federate; ~2 min cached)

test: $(DEV)  ## the whole suite: unit, CLI end-to-end, real server
	@$(MAKE) --no-print-directory install-federated || echo "make: .venv-federated could \
	not be built; the federated tests will be skipped (they say why)" >&2
	$(call pytest,)

test-fast: $(DEV)  ## no slow tests, no end-to-end: under 3 minutes on 2 cores
	$(call pytest,-m "not slow" --ignore=tests/e2e)

test-gpu: $(DEV)  ## the CUDA tests (skipped on a machine without CUDA)
	$(call pytest,-m gpu -rs)

lint: $(DEV)
	$(BIN)/ruff check src tests bench

bench: $(DEV)  ## Keras vs plain PyTorch vs launchml on the article's CNN (makes a TF venv)
	$(BIN)/python bench/seed_cnn.py --json bench/out/seed_cnn.json

constraints: $(DEV)  ## pin what .venv holds now (after `make test` passed with it)
	{ sed -n '/^#/p' $(CONSTRAINTS); $(PIP) freeze --exclude-editable; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)

upgrade-check:  ## newest releases (no constraints) in $(UPGRADE_VENV): what changed + fast tests
	test -x $(UPGRADE_VENV)/bin/python || $(PY) -m venv $(UPGRADE_VENV)
	$(UPGRADE_VENV)/bin/python -m pip install -q --upgrade --upgrade-strategy eager -e '.[dev]'
	$(UPGRADE_VENV)/bin/python -m pip freeze --exclude-editable \
		| $(UPGRADE_VENV)/bin/python .ci/constraints_diff.py $(CONSTRAINTS)
	$(UPGRADE_VENV)/bin/python -m pytest -m "not slow" --ignore=tests/e2e -p no:cacheprovider

clean:
	rm -rf quickstart runs bench/out .pytest_cache
