# Two entry points: `make run` (install, index the sample corpus, answer a sample question, start the
# UI on http://127.0.0.1:7860) and `make test`. `make quick` runs the tests that need neither the
# model nor a server (under a minute).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run ask test quick install

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,qdrant,ray]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/qa index corpus --index index
	$(BIN)/qa ask "What does SOSA do?" --index index
	$(BIN)/qa serve --corpus corpus --index index

# The path of a CPU without VNNI or native bf16, forced on any CPU: qa's own choices (QA_CPU_FLAGS)
# and the instruction sets of the kernel libraries under torch (oneDNN, ATen, MKL), capped at AVX2.
NO_VNNI := QA_CPU_FLAGS=-avx512_vnni,-avx_vnni,-amx_int8,-avx512_bf16,-amx_bf16 \
	ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2

# Everything, and beside it the precision-dependent tests again as a CPU without VNNI (on such a CPU
# the first run already takes that path; the second then repeats it), and mypy. Every pytest process
# runs one thread: two workers wait on child processes and servers now and then, and the second run
# fills those gaps (with two threads it oversubscribed the cores and took a minute longer). The
# second run's output comes after the first's.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check src tests ui benchmarks
	$(BIN)/mypy --strict src/qa & mypy=$$!; \
	log=$$(mktemp) && base=$$(mktemp -d); \
	$(NO_VNNI) OMP_NUM_THREADS=1 $(BIN)/python -m pytest -m precision -p no:cacheprovider --basetemp "$$base" \
		>"$$log" 2>&1 & novnni=$$!; \
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist worksteal; tests=$$?; \
	wait $$novnni; second=$$?; echo "--- the precision tests as a CPU without VNNI:"; cat "$$log"; \
	rm -rf "$$log" "$$base"; \
	wait $$mypy && [ $$tests = 0 ] && [ $$second = 0 ]

quick: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"
