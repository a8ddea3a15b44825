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

.PHONY: install install-evaluator protos test lint demo demo-model demo-check bench up eval status down render clean

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
		protos/seedbench.proto protos/clip.proto protos/reflection_v1.proto

# One pytest worker per CPU (TEST_WORKERS=0: serially, in this process); a test file stays
# on one worker, so its module-scoped servers and models start once.
TEST_WORKERS ?= auto
test: install
	OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile tests

lint: install
	$(VENV)/bin/ruff check .

demo: install
	$(PY) -m evaluator.demo

# Retrain the committed demo model (models/demo-llava) from scratch: deterministic, 2 CPU threads.
demo-model: install
	$(PY) models/train_demo.py --out models/demo-llava

# The demo model's answers vs prefix sharing, batch size, option and request order, method.
demo-check: install
	$(PY) bench/demo_check.py --out demo-out/check.md

bench: install
	$(PY) bench/run_bench.py --out docs/performance.md

render: install
	$(PY) -m deploy.render

# A cluster when kubectl reaches one (OVERLAY=local|gpu), else local processes
# (two tiny model-server replicas + the CLIP server on 127.0.0.1). See docs/deploy.md.
OVERLAY ?= local
OUT ?= results
MODEL ?=
up: install
	$(PY) -m deploy.workflow up --overlay $(OVERLAY) --model "$(MODEL)"

eval: install
	$(PY) -m deploy.workflow eval --overlay $(OVERLAY) --out $(OUT) --model "$(MODEL)"

status: install
	$(PY) -m deploy.workflow status --overlay $(OVERLAY)

down: install
	$(PY) -m deploy.workflow down --overlay $(OVERLAY)

clean:
	rm -rf $(VENV) .venv-evaluator build *.egg-info .pytest_cache demo-out
