"""The threads that run decodes: urgent ones at normal priority, drafts at a lower one.

With one intra-op thread per decode, onnxruntime computes on the calling thread, so a
thread's OS priority (its nice value) is its decode's priority. On busy cores the kernel
then gives a live final, its guess or an utterance's first words the CPU before a
worded partial or a file job, which is as near to preempting a draft as onnxruntime
allows (a run cannot be paused). A thread may raise its nice value without privileges but
not lower it again, hence two pools rather than one whose threads change priority.
"""
from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor

log = logging.getLogger(__name__)


def lower_priority(by: int) -> None:
    """Pool initializer: this thread (not the process) runs `by` nice levels below the process."""
    thread = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + by))
    except OSError as exc:  # a container that forbids it: drafts then share the CPU equally
        log.warning("draft decodes keep normal priority: %s", exc)


class DecodePools:
    def __init__(self, urgent_threads: int, draft_threads: int, draft_nice: int):
        self.urgent = ThreadPoolExecutor(max_workers=urgent_threads, thread_name_prefix="inference")
        self.drafts = ThreadPoolExecutor(max_workers=draft_threads, thread_name_prefix="inference-draft",
                                         initializer=lower_priority if draft_nice else None,
                                         initargs=(draft_nice,) if draft_nice else ())

    def submit(self, urgent: bool, fn, *args) -> Future:
        return (self.urgent if urgent else self.drafts).submit(fn, *args)

    def shutdown(self) -> None:
        """Decodes under way are not waited for (onnxruntime cannot stop them)."""
        for pool in (self.urgent, self.drafts):
            pool.shutdown(wait=False, cancel_futures=True)
