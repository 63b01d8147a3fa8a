# Every target bootstraps .venv on first use, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ROOT ?= runs/demo
TORCH_INDEX ?=

.PHONY: demo test bench sample server clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build. Plain PyPI
	# serves CUDA builds on Linux too: TORCH_INDEX=https://download.pytorch.org/whl/cpu picks
	# the CPU one (unset: the configured index, e.g. a local wheel cache).
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install "torch==2.13.0" \
		$(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/roberta pipeline --root $(ROOT) corpus/sample/ --vocab-size 8000 \
		--block-size 128 --config tiny --steps 300 \
		--seeds 1,2 --lrs 1e-3 --batch-sizes 8 --epochs 4

test: $(STAMP)
	CI=$${CI:-} $(BIN)/python -m pytest tests --durations=25

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

sample: $(STAMP)
	$(BIN)/python -m corpus.sample_crawl corpus/sample/sample.warc.gz

clean-venv:
	rm -rf $(VENV)

# A Prefect server on 127.0.0.1:4200 and a process worker, telemetry off (one Ctrl-C stops both).
server: $(STAMP)
	infra/local_server.sh
