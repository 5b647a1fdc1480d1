# Every target sets itself up: a fresh clone needs only `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK   := requirements/lock.txt

export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install test demo lint lock clean

# Every package comes at the exact version in $(LOCK) (pip constraints), so a fresh machine
# installs what CI tested. torch goes first: the pinned CPU wheel must be in place before
# peft/accelerate resolve torch, or pip pulls a multi-GB CUDA build. A changed lock rebuilds
# the venv from scratch, so nothing unlocked is left behind.
$(STAMP): pyproject.toml $(LOCK)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c $(LOCK) torch
	$(BIN)/pip install -q -c $(LOCK) -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest tests --durations=20  # the slowest tests, in CI's log too

demo: $(STAMP)
	$(BIN)/trafl demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

# Re-resolve every dependency at its newest allowed version and rewrite $(LOCK); then run
# `make test` (it reinstalls from the new lock) and commit the lock only with the suite green.
lock:
	PYTHON=$(PYTHON) scripts/lock.sh

clean:
	rm -rf $(VENV) runs
