# The two commands of the README: `make run` and `make test`. Both set up first (idempotent).
.PHONY: setup setup-test run test bench bench-live bench-peer-setup stop status clean

setup:
	@bash deploy/setup.sh

setup-test:
	@bash deploy/setup.sh --test

run: setup
	.venv/bin/voxbus up --foreground

# Tests reuse the model that setup built rather than building their own.
test: setup-test
	VOXBUS_TEST_MODEL_DIR=$$(.venv/bin/python deploy/ensure_model.py) .venv/bin/pytest -q

bench: setup-test
	.venv/bin/python -m tests.bench

# The live bench's peer (wyoming-faster-whisper) in its own venv, .venv-bench-peer; no model download.
bench-peer-setup:
	@bash tests/bench/setup_peer.sh

# voxbus against the peer, same weights and clips, in one run (tests/bench/README.md, "live").
bench-live: setup-test bench-peer-setup
	.venv/bin/python -m tests.bench live

status:
	.venv/bin/voxbus status

stop:
	.venv/bin/voxbus down

clean:
	rm -rf .venv .pytest_cache
