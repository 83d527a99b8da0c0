# tabserve: `make help` lists the targets. The README's two commands are `make run` and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: help install run train serve test test-fast lint typecheck bench soak deploy-check protos clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(BIN)/tabserve: pyproject.toml requirements.lock
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements.lock -e '.[test]'
	@touch $@

install: $(BIN)/tabserve ## create .venv and install tabserve with pinned versions

train: install ## train the default Iris model into ./.tabserve
	$(BIN)/tabserve train

run: train ## train the default Iris model and serve it on 127.0.0.1:$(PORT)
	$(BIN)/tabserve serve --port $(PORT)

test: install lint typecheck ## install everything the tests need, lint, type-check, run the suite
	bash tests/setup-system.sh
	$(BIN)/python -m pytest

lint: install ## ruff format check and lint
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench

typecheck: install ## mypy strict on the package
	$(BIN)/mypy

bench: install ## the benchmark against the lecture's stack; writes bench/RESULTS.md
	$(BIN)/python bench/run.py

soak: install ## the long reliability runs (10 minutes), outside CI
	TABSERVE_SOAK_SECONDS=600 $(BIN)/python -m pytest tests/reliability -k soak

deploy-check: install ## render the deployment files and lint them
	$(BIN)/python -m pytest tests/integration/deploy -k "not image"

protos: install ## regenerate the gRPC modules from serving/grpc/protos/grpc_predict_v2.proto
	PYTHON=$(abspath $(BIN))/python src/tabserve/serving/grpc/protos/generate.sh

clean: ## remove the venv and caches (not ./.tabserve)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist src/*.egg-info
