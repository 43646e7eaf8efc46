# The two commands of the README: `make run` and `make test`. Both set up first (idempotent).
.PHONY: setup setup-test run test test-scale bench soak bench-live bench-peer-setup stop status clean arm64 container-check service-verify

setup:
	@bash deploy/setup.sh

setup-test:
	@bash deploy/setup.sh --test

run: setup
	.venv/bin/voxbus up --foreground

# Tests reuse the model that setup built rather than building their own.
test: setup-test
	VOXBUS_TEST_MODEL_DIR=$$(.venv/bin/python deploy/ensure_model.py) .venv/bin/pytest -q --ignore=tests/e2e/test_scale_out.py

# Workers on other hosts, across Linux network namespaces (needs root and `ip netns`; ~90 s, so
# not in `make test`, which must stay under 12 minutes on a 2-core box).
test-scale: setup-test
	VOXBUS_TEST_MODEL_DIR=$$(.venv/bin/python deploy/ensure_model.py) .venv/bin/pytest -q tests/e2e/test_scale_out.py

bench: setup-test
	.venv/bin/python -m tests.bench

# An hour of 4 live streams and a file job a minute, then RSS growth, finals lost, latency drift
# (tests/bench/soak.py; SOAK_MINUTES=3 for a smoke). Not part of `make test` or `make bench`.
SOAK_MINUTES ?= 60
soak: setup-test
	SOAK_MINUTES=$(SOAK_MINUTES) .venv/bin/python -m tests.bench.soak

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

# arm64 under emulation (qemu-user): Debian 12 arm64 root, setup.sh, smoke suite, transcripts
# compared with this machine's. Needs root; slow (about an hour), so not part of `make test`.
# Scratch: $VOXBUS_ARM64_DIR (default ~/.cache/voxbus-arm64).
arm64:
	bash deploy/arm64/emulate.sh

# Build deploy/Containerfile for ARCH (amd64 or arm64), start it, check /health. Needs root.
ARCH ?= $(shell dpkg --print-architecture)
container-check:
	bash deploy/container-check.sh $(ARCH)

# systemd-analyze verify on the unit as install-service.sh writes it for this checkout.
service-verify: setup
	@bash deploy/install-service.sh --render .venv/voxbus.service && systemd-analyze verify .venv/voxbus.service && echo "voxbus.service: systemd-analyze verify passed"
