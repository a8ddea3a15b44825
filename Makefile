# SEED-Bench evaluation platform. `make demo` and `make test` work on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# Torch and torchvision come from the machine's local wheel store; never let a
# resolver pull a newer torch from the index.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install install-evaluator protos test lint demo bench up down render clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_PINS)
	$(PIP) install -q -e '.[server,clip,dev]' $(TORCH_PINS)
	touch $@

install: $(VENV)/.installed

# The evaluator alone (no torch): a separate venv for client-only machines.
install-evaluator:
	$(PYTHON) -m venv .venv-evaluator
	.venv-evaluator/bin/pip install -q -e .

protos: install
	$(PY) -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. \
		protos/seedbench.proto protos/clip.proto

test: install
	$(PY) -m pytest -q tests

lint: install
	$(VENV)/bin/ruff check .

demo: install
	$(PY) -m evaluator.demo

bench: install
	$(PY) bench/run_bench.py --out docs/performance.md

render: install
	$(PY) -m deploy.render

up: render
	kubectl apply -k deploy/k8s/overlays/local

down:
	kubectl delete -k deploy/k8s/overlays/local

clean:
	rm -rf $(VENV) .venv-evaluator build *.egg-info .pytest_cache demo-out
