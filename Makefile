# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
# Both build the virtual environment first; nothing else is needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch and torchvision are installed as a matching pair first; the project then asks for ranges
# (torch>=2.3, torchvision>=0.18) that this pair satisfies, so pip installs nothing heavier.
TORCH_PAIR ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install demo test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip 'setuptools>=77'
	$(BIN)/pip install -q $(TORCH_PAIR)
	$(BIN)/pip install -q -e '.[lab,test]'
	touch $@

demo: install
	$(BIN)/vicinal demo

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

# After the tests: the wheel, installed in a fresh venv outside the checkout (reusing this venv's torch), runs the
# lab from anywhere (.ci/wheel-check.sh; seconds).
test: lint
	$(BIN)/python -m pytest -q
	VENV=$(abspath $(VENV)) bash .ci/wheel-check.sh

# BENCH_ARGS: options of bench_mixing.py, e.g. BENCH_ARGS="--readme --tag epyc2-warm" (see benchmarks/README.md)
bench: install
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/bench_mixing.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .ruff_cache
