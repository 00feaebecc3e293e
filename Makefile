# Statbox: `make up` runs the sandbox on this machine; `make test` runs every test.
# Both install what they need first, into .venv (Python) and .venv/node (Node.js).

# A Python >= 3.11 that every account can read: when Statbox runs as root, user servers run
# as an unprivileged account and must be able to execute the environment's interpreter.
PYTHON ?= $(shell for p in /usr/bin/python3 python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { command -v $$p; break; }; done)
VENV ?= .venv
BIN := $(VENV)/bin
NODE_DIR := $(VENV)/node
PROXY := $(NODE_DIR)/node_modules/.bin/configurable-http-proxy
ARGS ?=

.PHONY: help install up test lint bench clean
help:
	@echo "make up      install what is needed and run Statbox here (Ctrl-C stops it); ARGS='--port 8080'"
	@echo "make test    install what the tests need and run them all"
	@echo "make lint    ruff, mypy and the import contracts (import-linter)"
	@echo "make bench   run the benchmarks in bench/"

# Debian/Ubuntu packages the sandbox needs, each with the check that says it is there.
SYSTEM_PACKAGES := 'python3-venv=$(PYTHON) -m ensurepip --version' 'nodejs=command -v node' \
	'npm=command -v npm' 'chromium=test -x /usr/bin/chromium' 'docker.io=command -v dockerd' \
	'mmdebstrap=command -v mmdebstrap' 'iptables=command -v iptables' \
	'bubblewrap=command -v bwrap' 'util-linux=command -v setpriv' \
	'fonts-noto-core=test -f /usr/share/fonts/truetype/noto/NotoSansArabic-Regular.ttf' \
	'fonts-noto-cjk=test -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc'
# ... and those only the tests need: a PostgreSQL server for the hub database checks of
# docker mode (tests/unit/test_hubdb.py starts its own on a private socket); pdftotext reads
# certificates' text back (tests/certify/test_certificates_pdf.py).
TEST_SYSTEM_PACKAGES := 'postgresql=test -d /usr/lib/postgresql' 'poppler-utils=command -v pdftotext'

# statbox with the notebook extra: in local mode user servers, kernels and Dask clusters run
# from this environment (`make up`). Versions as requirements/constraints.txt pins them.
$(BIN)/statbox: pyproject.toml requirements/constraints.txt
	@test -n "$(PYTHON)" || { echo "Python >= 3.11 is needed: apt-get install python3 python3-venv"; exit 3; }
	bash scripts/system-packages.sh $(SYSTEM_PACKAGES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements/constraints.txt -e '.[notebook]'
	touch $@

# The test extra adds the kubernetes extra and the tools of `make test` and `make lint`.
$(BIN)/pytest: $(BIN)/statbox
	bash scripts/system-packages.sh $(TEST_SYSTEM_PACKAGES)
	$(BIN)/pip install --quiet -c requirements/constraints.txt -e '.[test]'
	touch $@

$(PROXY): package.json package-lock.json
	bash scripts/system-packages.sh $(SYSTEM_PACKAGES)
	mkdir -p $(NODE_DIR)
	cp package.json package-lock.json $(NODE_DIR)/
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Servers and Dask processes run under users' uids, which cannot write the checkout's
# __pycache__: compiled once here, they are not compiled again at every start.
install: $(BIN)/statbox $(BIN)/pytest $(PROXY)
	$(BIN)/python -m compileall -q statbox

up: $(BIN)/statbox $(PROXY)
	$(BIN)/python -m compileall -q statbox
	$(BIN)/statbox catalog samples --if-missing
	$(BIN)/statbox up $(ARGS)

test: install
	$(BIN)/pytest $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install
	$(BIN)/python bench/spawn.py $(ARGS)
	$(BIN)/python bench/grading.py
	$(BIN)/python bench/dask.py

clean:
	rm -rf $(VENV) .statbox
