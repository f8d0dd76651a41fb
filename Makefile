# Two entry points: `make run` (install, ingest the demo documents, serve the UI) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU wheel; the Docker image passes an index URL with it.
TORCH_INSTALL ?= torch==2.13.0
INDEX ?= rag-index
PORT ?= 8501

.PHONY: install test lint soak run demo-docs bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_INSTALL)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

test: install
	$(BIN)/python -m pytest

# ruff (pyflakes, import order, bugbear, pyupgrade) and mypy; .ci/run runs it before the tests.
lint: install
	$(BIN)/ruff check rag ingest eval finetune app bench testkit tests
	$(BIN)/mypy rag ingest eval finetune app

# The long reliability trials (30 kill -9 trials, full-disk levels, hostile files at full size, fuzzing
# with ten times the examples); prints its counts.
soak: install
	$(BIN)/python -m pytest tests/reliability -m soak -s
	RAG_FUZZ_EXAMPLES=1500 $(BIN)/python -m pytest tests/reliability/test_fuzz.py -q

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
