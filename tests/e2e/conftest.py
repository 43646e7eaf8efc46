"""End-to-end fixtures: every stage under supervisord (`voxbus up`) with the real tiny model.

A stack that fails to start fails the tests with its log (tests/kit.py `serve_stack`).
"""
from __future__ import annotations

import pytest

from tests.kit import serve_stack


@pytest.fixture(scope="package")
def stack(tiny_models_dir):
    """One supervisord stack for all e2e tests (max_upload_mb and max_audio_s lowered to test the limits)."""
    yield from serve_stack(tiny_models_dir, VOXBUS_GATEWAY__MAX_UPLOAD_MB="20", VOXBUS_GATEWAY__MAX_AUDIO_S="620")


@pytest.fixture
def stack_key(stack):
    """add(name, scopes) → a key on the package's stack (add.revoke(name) revokes one now); every key still
    active is revoked afterwards, so with auth.mode "auto" the stack needs no key for the tests that follow."""
    from tests.e2e.stack import keys_command

    active = []

    def add(name: str, scopes: str) -> str:
        secret = keys_command(stack, "add", name, "--scopes", scopes)
        active.append(name)
        return secret

    def revoke(name: str) -> None:
        keys_command(stack, "revoke", name)
        active.remove(name)
    add.revoke = revoke
    try:
        yield add
    finally:
        for name in active:
            keys_command(stack, "revoke", name)
