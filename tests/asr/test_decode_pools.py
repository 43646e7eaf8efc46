"""Decode threads: drafts run at a lower OS priority than urgent decodes (asr/decode_pools.py)."""
from __future__ import annotations

import os
import threading

from asr.decode_pools import DecodePools


def own_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_drafts_run_at_a_lower_priority_and_urgent_decodes_at_the_process_own():
    pools = DecodePools(urgent_threads=2, draft_threads=2, draft_nice=10)
    try:
        process_nice = own_nice()
        urgent = pools.submit(True, own_nice).result(timeout=5)
        draft = pools.submit(False, own_nice).result(timeout=5)
    finally:
        pools.shutdown()
    assert urgent == process_nice
    assert draft == min(19, process_nice + 10)


def test_draft_nice_0_leaves_drafts_at_normal_priority():
    pools = DecodePools(urgent_threads=1, draft_threads=1, draft_nice=0)
    try:
        assert pools.submit(False, own_nice).result(timeout=5) == own_nice()
    finally:
        pools.shutdown()
