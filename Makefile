# The two commands of the README: `make run` and `make test`. Both set up first (idempotent).
.PHONY: setup setup-test run test bench stop status clean

setup:
	@bash deploy/setup.sh

setup-test:
	@bash deploy/setup.sh --test

run: setup
	.venv/bin/voxbus up --foreground

test: setup-test
	.venv/bin/pytest -q

bench: setup-test
	.venv/bin/python -m tests.bench

status:
	.venv/bin/voxbus status

stop:
	.venv/bin/voxbus down

clean:
	rm -rf .venv .pytest_cache
