# Thin wrappers: each target calls scripts/setup.sh, the govmail CLI or a test runner.
BIN := $(CURDIR)/.venv/bin
export PATH := $(BIN):$(PATH)

.PHONY: up down status credentials test unit lint image bench

up:
	bash scripts/setup.sh
	$(BIN)/govmail lab up

down:
	$(BIN)/govmail lab down

status:
	$(BIN)/govmail lab status

credentials:
	$(BIN)/govmail lab credentials

image:
	$(BIN)/govmail lab image

test:
	bash scripts/setup.sh
	$(MAKE) lint
	$(BIN)/pytest tests/unit
	$(BIN)/govmail lab image
	$(BIN)/molecule test -s default

unit:
	$(BIN)/pytest tests/unit

# The whole tree: every Python file (ruff), every YAML file (.yamllint), every playbook and role
# (.ansible-lint, profile production, offline). Part of `make test`.
lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/yamllint --strict .
	$(BIN)/ansible-lint

# Benchmarks against the lab (not part of `make test`): bench/results/<date>.json and .md
bench:
	bash scripts/setup.sh
	$(BIN)/govmail lab up
	command -v strace >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace
	$(BIN)/python bench/run.py $(BENCH)
