# The two commands of the README: `make run` and `make test`. Everything else supports them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt 2>/dev/null | sha256sum | cut -c1-12)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: install index run test ask clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned: anything looser pulls a multi-GB CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[llm,ui,slack,eval,test]' $(if $(wildcard constraints.txt),-c constraints.txt)
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

index: install
	$(BIN)/qa ingest

ask: index
	$(BIN)/qa ask "Who is the UN Secretary General mentioned?"

run: index
	$(BIN)/qa ask "Who is the UN Secretary General mentioned?"

test: install
	$(BIN)/python -m pytest -m "not stress" -q

clean:
	rm -rf $(VENV) .qa .pytest_cache
