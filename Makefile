# The two commands a newcomer needs: `make demo` (set up and run) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test app lint bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/substantiate demo

app: $(STAMP)
	$(BIN)/substantiate app

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: $(STAMP) lint
	$(BIN)/python -m pytest -n 2 --dist loadfile

bench: $(STAMP)
	$(BIN)/python -m benchmarks.parse_pubmed
	$(BIN)/python -m benchmarks.load_studies
	$(BIN)/python -m benchmarks.eutils_requests
	$(BIN)/python -m benchmarks.retrieval --scifact ../shared/datasets/scifact --split train
	$(BIN)/python -m benchmarks.judgements
	$(BIN)/python -m benchmarks.claim_library
	$(BIN)/python -m benchmarks.reliability
# surveillance runs last: it exits 1 when a request count misses its target, stopping make.
	$(BIN)/python -m benchmarks.surveillance

clean:
	rm -rf $(VENV) data/*.db data/*.db-* data/cache
