# ADDE: `make run` serves the dashboard on the demo project, `make test` runs every test.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
# numba (used by umap/pynndescent) JIT-compiles on first import; a persistent cache makes later runs fast.
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba
PORT ?= 8501

.PHONY: run dev test demo bench clean

$(STAMP): requirements.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	@echo "Installing requirements into $(VENV) (first time: a few minutes)…"
	@set -o pipefail; $(PY) -m pip install -q --disable-pip-version-check -r requirements.txt 2>&1 \
		| { grep -v "is ignored: it is neither a file nor a directory" || true; }
	@touch $(STAMP)

# A served demo never reloads on edits, so it watches no files at all (see .streamlit/config.toml for why).
# `make dev` reloads on save, polling only the app's own source files.
run: $(STAMP)
	$(PY) -m adde_core demo
	$(PY) -m streamlit run app.py --server.port $(PORT) --server.fileWatcherType none

dev: $(STAMP)
	$(PY) -m streamlit run app.py --server.port $(PORT) --server.fileWatcherType poll --server.runOnSave true

test: $(STAMP)
	$(PY) -m pytest

demo: $(STAMP)
	$(PY) -m adde_core demo

bench: $(STAMP)
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .cache .pytest_cache
