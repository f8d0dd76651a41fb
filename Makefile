# Two entry points: `make run` (install, ingest the demo documents, serve the UI) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU wheel; the Docker image passes an index URL with it.
TORCH_INSTALL ?= torch==2.13.0
INDEX ?= rag-index
PORT ?= 8501

.PHONY: install test run demo-docs bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_INSTALL)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

test: install
	$(BIN)/python -m pytest

# Ingest and query benchmarks against LangChain baselines: bench/results.json and bench/RESULTS.md.
bench: install
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	PYTHONPATH=. $(BIN)/python -m bench

demo-docs: install
	$(BIN)/python examples/make_demo_docs.py examples/docs

run: demo-docs
	$(BIN)/rag ingest examples/docs --index $(INDEX) --prune || [ $$? -eq 3 ]
	$(BIN)/rag ui --index $(INDEX) --port $(PORT)

clean:
	rm -rf $(VENV) $(INDEX) test-output .pytest_cache
