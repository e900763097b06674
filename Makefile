# Two entry points: `make run` (install, index the sample corpus, answer a sample question, start the
# UI on http://127.0.0.1:7860) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run ask test install

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,qdrant,ray]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/qa index corpus
	$(BIN)/qa ask "What does SOSA do?"
	$(BIN)/qa serve --corpus corpus

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check src tests ui benchmarks
	$(BIN)/python -m pytest
