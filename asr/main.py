"""The asr process: PULL segments from vad, transcribe, PUB transcripts (ARCHITECTURE.md §1, §5).

One thread owns the sockets: it drains the PULL socket into the SegmentQueue, heartbeats,
and hands segments to `asr.parallel` inference threads, so a long inference never delays a
heartbeat and a final never waits behind a partial in progress. At most one final (or
speculation) and one partial per stream are in flight: a stream's finals go out in order,
each prompted with the one before. Speculative finals are decoded ahead and published the
moment their final arrives (asr/speculation.py). Several asr processes, on this host or
others (tcp:// endpoints), share the PUSH stream from vad.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from importlib.metadata import version as _version

import zmq

from asr.history import FinalHistory, HistoryServer
from asr.speculation import Speculations
from asr.transcriber import SegmentTranscriber
from asr.utterances import UtteranceAudio
from bus import schemas, sockets
from bus.segment_queue import Queued, SegmentQueue
from bus.stage import StageRuntime, run_stage
from config.paths import model_dir

log = logging.getLogger(__name__)
POLL_MS = 100
MODEL_RETRY_S = 10.0
# What this worker takes off the socket ahead of the ones it is transcribing. File-job
# segments (up to 30 s each) are held back to one per inference slot, so they wait in vad's
# outbox, where jobs are served round-robin and shared between workers, and a worker that
# dies takes little with it. Live segments are small; draining them lets newer partials and
# finals supersede queued partials here.
MAX_LOCAL_SEGMENTS = 64
RUNTIME_VERSION = _version("onnxruntime")


def lane(segment: schemas.Segment) -> tuple[str, str] | None:
    """The in-flight lane a live segment occupies: a stream's finals (and guesses) or its partials."""
    if segment.stream is None:
        return None
    return segment.stream, "partial" if segment.kind == "partial" else "final"


def as_partial(msg: schemas.Transcript) -> schemas.Partial:
    """A transcript shown as a partial (a speculation not yet confirmed by its final)."""
    fields = {f.name: getattr(msg, f.name) for f in dataclasses.fields(msg)}
    return schemas.Partial(**{**fields, "is_speech_final": False})


class AsrLoop:
    def __init__(self, runtime: StageRuntime):
        self.runtime = runtime
        self.cfg = runtime.config
        self.worker = self.cfg.asr.worker or f"{socket.gethostname()}-{os.getpid()}"
        cores = len(runtime.cores) or 1
        self.parallel = self.cfg.asr.parallel or cores
        self.threads = self.cfg.asr.threads or max(1, cores // self.parallel)
        self.queue = SegmentQueue()
        self.utterances = UtteranceAudio()
        self.speculations = Speculations()
        self.transcriber: SegmentTranscriber | None = None
        self.model_error = ""
        self.next_model_try = 0.0
        self.counters = {"segments_done": 0, "partials_done": 0, "errors": 0, "bad_messages": 0,
                         "inference_ms_total": 0.0}
        self.pending: dict[Future, Queued] = {}
        self.busy_lanes: set[tuple[str, str]] = set()
        self.history_endpoint = ""
        # Finals are numbered from the clock's milliseconds: a worker that restarts under the same
        # name (a fixed asr.worker, a container's pid) never reuses a number the store has seen.
        self.final_seq = int(time.time() * 1000)
        self.history = FinalHistory(self.worker)  # the recent finals, for a subscriber that missed some

    def state(self) -> tuple[bool, str, dict]:
        done = self.counters["segments_done"] + self.counters["partials_done"]
        mean = self.counters["inference_ms_total"] / done if done else 0.0
        spec = vars(self.speculations.counters)
        counters = {**self.counters, "inference_ms_total": round(self.counters["inference_ms_total"], 1),
                    "mean_inference_ms": round(mean, 1), "queue_depth": len(self.queue),
                    "in_flight": len(self.pending), "parallel": self.parallel,
                    "partials_superseded": self.queue.partials_superseded, "partial_gaps": self.utterances.gaps,
                    "history": self.history_endpoint, "final_seq": self.history.last,
                    **{f"speculations_{k}": round(v, 1) for k, v in spec.items()}}
        if self.transcriber is None:
            return False, self.model_error or "loading model", counters
        return True, "ok", counters

    def model_status(self) -> schemas.ModelStatus:
        model = self.transcriber.model if self.transcriber else None
        return schemas.ModelStatus(
            name=self.cfg.asr.model, loaded=model is not None, threads=self.threads, runtime=RUNTIME_VERSION,
            precision=model.manifest.precision if model else "", multilingual=bool(model and model.multilingual),
            languages=list(model.languages) if model else None,
            word_timestamps=model.sessions.has_attention_decoder if model else None)

    def load_model(self) -> None:
        from asr.whisper.engine import WhisperModel  # onnxruntime import is slow; only the asr process pays it
        path = model_dir(self.cfg.models_dir, self.cfg.asr.model)
        try:
            model = WhisperModel(path, threads=self.threads)
        except (OSError, ValueError) as exc:
            self.model_error = str(exc)
            log.error("model not loaded: %s", exc)
            self.next_model_try = time.monotonic() + MODEL_RETRY_S
            return
        default = self.cfg.asr.language or ("en" if not model.multilingual else "auto")
        self.transcriber = SegmentTranscriber(model, self.cfg.asr, self.worker, default)
        log.info("model loaded", extra={"model": str(path), "threads": self.threads, "parallel": self.parallel})

    def run(self) -> None:
        ctx, bus_cfg = self.runtime.ctx, self.cfg.bus
        pull = sockets.puller(ctx, self.cfg.vad.segments, bus_cfg, bind=False)
        pub = self.runtime.publisher()
        beat = self.runtime.heartbeater(pub, self.state, instance=self.worker, model=self.model_status)
        pool = ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="inference")
        history = HistoryServer.bind(ctx, f"ipc://{self.cfg.run_dir}/asr-history-{os.getpid()}", self.history, bus_cfg)
        self.history_endpoint = history.endpoint
        try:
            while not self.runtime.stopping.is_set():
                if self.transcriber is None and time.monotonic() >= self.next_model_try:
                    self.load_model()
                if self.room_for_more():
                    if pull.poll(POLL_MS if not self.pending else 10):
                        self.drain(pull, pub)
                elif self.pending:
                    wait(list(self.pending), timeout=POLL_MS / 1000, return_when=FIRST_COMPLETED)
                self.finish(pub)
                self.start_next(pool, pub)
                history.serve()
                beat.tick()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            history.close()
            pull.close(linger=0)
            pub.close()

    def room_for_more(self) -> bool:
        return self.queue.job_segments < self.parallel and len(self.queue) < MAX_LOCAL_SEGMENTS

    def drain(self, pull: zmq.Socket, pub: zmq.Socket) -> None:
        while self.room_for_more():
            try:
                data = pull.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                msg = schemas.decode(data)
            except schemas.SchemaError as exc:
                self.counters["bad_messages"] += 1
                log.warning("bad message on vad.segments: %s", exc)
                continue
            if not isinstance(msg, schemas.Segment):
                self.counters["bad_messages"] += 1
                log.warning("unexpected %s on vad.segments", msg.TYPE)
                continue
            whole = self.utterances.complete(msg)
            if whole is not None:  # else: a partial's new audio that joins nothing held here (counted)
                self.take(whole, pub)

    def take(self, segment: schemas.Segment, pub: zmq.Socket) -> None:
        """Queue a segment, unless a speculation already answers (or will answer) this final."""
        if segment.stream is not None:
            if segment.kind == "partial":
                self.speculations.on_partial(segment)
            elif segment.kind == "speculative":
                self.speculations.offer(segment)
            else:
                answer = self.speculations.on_final(segment)
                if answer is True:  # the guess is under way; it goes out as this final when done
                    return
                if answer:
                    self.publish(pub, answer)
                    return
        self.queue.put(segment)

    def start_next(self, pool: ThreadPoolExecutor, pub: zmq.Socket) -> None:
        while len(self.pending) < self.parallel:
            item = self.queue.get(skip=lambda queued: lane(queued.segment) in self.busy_lanes)
            if item is None:
                return
            if self.transcriber is None:  # say so now rather than leave the sender waiting
                if item.segment.kind == "speculative":
                    self.take_back(item, pub)
                    continue
                sockets.publish(pub, schemas.Error.about(
                    item.segment, "model_not_loaded", f"asr {self.worker}: {self.model_error or 'model loading'}",
                    permanent=False, stage="asr"))
                self.counters["errors"] += 1
                continue
            if (busy := lane(item.segment)) is not None:
                self.busy_lanes.add(busy)
            self.pending[pool.submit(self.transcriber.transcribe, item.segment, item.received)] = item

    def finish(self, pub: zmq.Socket) -> None:
        for future in [f for f in self.pending if f.done()]:
            item = self.pending.pop(future)
            self.busy_lanes.discard(lane(item.segment))
            try:
                msg = future.result()
            except Exception as exc:  # an engine bug must not take the worker down: log it, tell the sender
                log.exception("inference failed", extra={"stream": item.segment.stream, "job": item.segment.job})
                msg = schemas.Error.about(item.segment, "inference_failed", f"asr {self.worker}: {exc}",
                                          permanent=False, stage="asr")
            if isinstance(msg, schemas.Error):
                self.counters["errors"] += 1
            else:
                self.counters["segments_done" if msg.kind == "final" else "partials_done"] += 1
                self.counters["inference_ms_total"] += msg.encode_ms + msg.decode_ms
            if item.segment.kind == "speculative":
                if isinstance(msg, schemas.Error):  # a guess that failed tells nobody; its final decodes anew
                    self.take_back(item, pub)
                    continue
                final = self.speculations.on_result(item.segment, msg)  # the final, if it came meanwhile
                if final is True:  # held for its final; news already, as a partial (vad's endpoint adapts to it)
                    self.publish(pub, as_partial(msg))
                if isinstance(final, bool):  # held, or voided by speech that went on
                    continue
                msg = final
            self.publish(pub, msg)

    def take_back(self, item: Queued, pub: zmq.Socket) -> None:
        """A speculation that cannot be decoded: the final waiting on it goes through the queue."""
        waiting = self.speculations.on_failure(item.segment)
        if waiting is not None:
            self.queue.put(waiting)

    def publish(self, pub: zmq.Socket, msg: schemas.Message) -> None:
        if isinstance(msg, schemas.Partial) and not msg.text:
            return  # nothing heard yet: a partial with no words tells a client nothing
        if isinstance(msg, schemas.Final):  # numbered per producer (the zguide's Clone pattern): gaps show
            self.final_seq += 1
            msg = dataclasses.replace(msg, seq=self.final_seq)
            self.history.add(msg)
        sockets.publish(pub, msg)
        if isinstance(msg, schemas.Transcript) and self.transcriber is not None:
            self.transcriber.published(msg)


def loop(runtime: StageRuntime) -> None:
    AsrLoop(runtime).run()


def main(argv: list[str] | None = None) -> int:
    return run_stage("asr", loop, argv)
