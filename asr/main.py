"""The asr process: take segments from vad's broker, transcribe, PUB transcripts (ARCHITECTURE.md §1, §5).

One thread owns the sockets: it takes what the segment broker gives (asr/broker_link.py: a
DEALER that says `ready` with this worker's free decode slots, heartbeats, and says `done` for
each segment once its transcript or error is published), heartbeats on the bus, and hands
segments to `asr.parallel` inference threads, so a long inference never delays a heartbeat
and a final never waits behind a partial in progress. A finished decode wakes the loop at once
(a pipe in its poller). At most one final (or speculation) and one partial per stream are in
flight: a stream's finals go out in order, each prompted with the one before. Speculative
finals are decoded ahead and published the moment their final arrives (asr/speculation.py).
Several asr processes, on this host or others (tcp:// endpoints), share vad's broker.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
from concurrent.futures import Future
from importlib.metadata import version as _version

import zmq

from asr.broker_link import BrokerLink
from asr.decode_pools import DecodePools
from asr.history import FinalHistory, HistoryServer
from asr.speculation import Speculations
from asr.speed import RecentSpeed, throttled
from asr.transcriber import SegmentTranscriber
from asr.utterances import UtteranceAudio
from bus import curve, pcm, schemas, sockets, worker_protocol
from bus.segment_queue import Queued, SegmentQueue, is_urgent, lane
from bus.stage import StageRuntime, run_stage
from config.paths import model_dir

log = logging.getLogger(__name__)
POLL_MS = 100
MODEL_RETRY_S = 10.0
RUNTIME_VERSION = _version("onnxruntime")


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
        # Drafts (worded partials, file jobs) fill `parallel`; the reserved slot is for urgent decodes only.
        self.slots = self.parallel + (1 if self.cfg.asr.reserved_slot else 0)
        self.queue = SegmentQueue()
        self.utterances = UtteranceAudio()
        self.speculations = Speculations()
        self.transcriber: SegmentTranscriber | None = None
        self.model_error = ""
        self.next_model_try = 0.0
        # wordless_*: partials decoded while vad waited for an utterance's first words, and those that found none
        self.counters = {"segments_done": 0, "partials_done": 0, "wordless_done": 0, "wordless_empty": 0, "errors": 0,
                         "inference_ms_total": 0.0, "partial_ms_total": 0.0, "results_void": 0}
        self.pending: dict[Future, Queued] = {}
        self.busy_lanes: set[tuple[str, str]] = set()
        self.held_finals: dict[str, schemas.Segment] = {}  # stream → its final, waiting on the guess under way
        self.void_tickets: set[int] = set()  # segments the broker gave to another worker: not ours to publish
        self.link: BrokerLink | None = None
        self.wake_r = self.wake_w = -1  # run(): a pipe a finished decode writes to, so the poller wakes at once
        self.history_endpoint = ""
        # Finals are numbered from the clock's milliseconds: a worker that restarts under the same
        # name (a fixed asr.worker, a container's pid) never reuses a number the store has seen.
        self.final_seq = int(time.time() * 1000)
        self.history = FinalHistory(self.worker)  # the recent finals, for a subscriber that missed some
        self.decode = None  # the transcriber's decode, timed (and throttled): set when the model loads
        self.speed = RecentSpeed()  # this worker's recent real-time factor, in its heartbeats

    def state(self) -> tuple[bool, str, dict]:
        done = self.counters["segments_done"] + self.counters["partials_done"]
        mean = self.counters["inference_ms_total"] / done if done else 0.0
        spec = vars(self.speculations.counters)
        counters = {**self.counters, "inference_ms_total": round(self.counters["inference_ms_total"], 1),
                    "partial_ms_total": round(self.counters["partial_ms_total"], 1),
                    "mean_inference_ms": round(mean, 1), "queue_depth": len(self.queue),
                    "in_flight": len(self.pending), "parallel": self.parallel, "slots": self.slots,
                    "partials_superseded": self.queue.partials_superseded, "partial_gaps": self.utterances.gaps,
                    "history": self.history_endpoint, "final_seq": self.history.last,
                    **({**self.link.counters, "held": len(self.link.outstanding)} if self.link else {}),
                    **{f"speculations_{k}": round(v, 1) for k, v in spec.items()},
                    "rtf": round(self.speed.rtf, 3), "remote": curve.is_tcp(self.cfg.vad.segments)}
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
            model = WhisperModel(path, threads=self.threads, draft_encoder=self.cfg.asr.draft_encoder)
        except (OSError, ValueError) as exc:
            self.model_error = str(exc)
            log.error("model not loaded: %s", exc)
            self.next_model_try = time.monotonic() + MODEL_RETRY_S
            return
        default = self.cfg.asr.language or ("en" if not model.multilingual else "auto")
        self.transcriber = SegmentTranscriber(model, self.cfg.asr, self.worker, default)
        self.decode = throttled(self.transcriber.transcribe, self.cfg.asr.throttle, self.speed,
                                # a length only: a malformed segment is the transcriber's to refuse
                                lambda segment: len(segment.pcm) / pcm.BYTES_PER_SAMPLE / pcm.SAMPLE_RATE)
        log.info("model loaded", extra={"model": str(path), "threads": self.threads, "parallel": self.parallel,
                                        "slots": self.slots})

    def run(self) -> None:
        ctx, bus_cfg = self.runtime.ctx, self.cfg.bus
        pub = self.runtime.publisher()
        beat = self.runtime.heartbeater(pub, self.state, instance=self.worker, model=self.model_status)
        pools = DecodePools(self.slots, self.parallel, self.cfg.asr.draft_nice)
        history = HistoryServer.bind(ctx, f"ipc://{self.cfg.run_dir}/asr-history-{os.getpid()}", self.history, bus_cfg)
        self.history_endpoint = history.endpoint
        self.load_model()  # before `ready`: a load that holds the loop must not look like a dead worker
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.link = BrokerLink(ctx, self.cfg, self.worker, self.slots, self.cfg.asr.model,
                               rtf=lambda: self.speed.rtf, reserved=self.slots - self.parallel)
        self.link.connect()
        dealer = poller = None
        try:
            while not self.runtime.stopping.is_set():
                if self.transcriber is None and time.monotonic() >= self.next_model_try:
                    self.load_model()
                if dealer is not self.link.sock:  # first turn, or the link reconnected: poll its socket
                    dealer, poller = self.link.sock, zmq.Poller()
                    for sock in (dealer, history.sock, self.wake_r):
                        poller.register(sock, zmq.POLLIN)
                ready = dict(poller.poll(min(POLL_MS, self.link.wait_ms())))
                if self.wake_r in ready:
                    self.drain_wakes()
                if dealer in ready:
                    self.drain(pub)
                self.finish(pub)
                self.start_next(pools, pub)
                history.serve()
                beat.tick()
                self.link.tick()
        finally:
            # Decodes under way are not waited for: `bye` has the broker give their segments to others.
            pools.shutdown()
            self.link.close()
            history.close()
            pub.close()
            os.close(self.wake_r)
            os.close(self.wake_w)

    def drain_wakes(self) -> None:
        try:
            while os.read(self.wake_r, 4096):
                pass
        except BlockingIOError:  # empty: every wake read
            return

    def wake(self, _future: Future) -> None:
        """Called in the inference thread when its decode is done."""
        try:
            os.write(self.wake_w, b"\0")
        except (BlockingIOError, OSError):  # full (the loop has wakes to read already), or closed at exit
            return

    def drain(self, pub: zmq.Socket) -> None:
        for msg in self.link.receive():
            if isinstance(msg, worker_protocol.Reset):
                self.on_reset(msg)
                continue
            whole = self.utterances.complete(msg)
            if whole is None:  # a partial's new audio that joins nothing held here (counted)
                self.link.done(msg)
                continue
            self.take(whole, pub)

    def on_reset(self, reset: worker_protocol.Reset) -> None:
        """The broker does not know this worker: say `ready` again. `expired`: it gave what this
        worker held to others, so none of it may be published here (another worker answers it)."""
        if reset.reason == "expired":
            self.void_tickets |= self.link.outstanding
            # Queued and held segments are dropped here; decodes under way stay outstanding, and
            # their `done` (unpublished) gives their slots back to the broker when they end.
            dropped = [item.segment.ticket for item in self.queue.take_all()]
            dropped += [final.ticket for final in self.held_finals.values()]
            self.held_finals.clear()
            self.link.forget(dropped)
            log.warning("the segment broker gave this worker's segments to others",
                        extra={"void": len(self.void_tickets), "dropped": len(dropped)})
        self.link.ready()

    def take(self, segment: schemas.Segment, pub: zmq.Socket) -> None:
        """Queue a segment, unless a speculation already answers (or will answer) this final."""
        if segment.stream is not None:
            if segment.kind == "partial":
                self.speculations.on_partial(segment)
            elif segment.kind == "speculative":
                if not self.speculations.offer(segment):
                    self.link.done(segment)   # not decoded: the broker may forget it
                    return
            else:
                answer = self.speculations.on_final(segment)
                if answer is True:  # the guess is under way; it goes out as this final when done
                    self.held_finals[segment.stream] = segment
                    return
                if answer:
                    self.answer(pub, segment, answer)
                    return
        self.enqueue(segment)

    def enqueue(self, segment: schemas.Segment) -> None:
        for displaced in self.queue.put(segment):  # superseded here: its sender is done with it
            self.link.done(displaced)

    def start_next(self, pools: DecodePools, pub: zmq.Socket) -> None:
        def waits(queued: Queued) -> bool:
            """Its lane is busy; or a draft and `parallel` decodes run; or urgent and `parallel` urgent
            ones run (more at once only slow each other: on overload the finals must keep up)."""
            if lane(queued.segment) in self.busy_lanes:
                return True
            if is_urgent(queued.segment):
                return sum(is_urgent(item.segment) for item in self.pending.values()) >= self.parallel
            return len(self.pending) >= self.parallel

        while len(self.pending) < self.slots:
            item = self.queue.get(skip=waits)
            if item is None:
                return
            if self.transcriber is None:  # say so now rather than leave the sender waiting
                if item.segment.kind == "speculative":
                    self.take_back(item)
                    continue
                self.counters["errors"] += 1
                self.answer(pub, item.segment, schemas.Error.about(
                    item.segment, "model_not_loaded", f"asr {self.worker}: {self.model_error or 'model loading'}",
                    permanent=False, stage="asr"))
                continue
            if (busy := lane(item.segment)) is not None:
                self.busy_lanes.add(busy)
            future = pools.submit(is_urgent(item.segment), self.decode, item.segment, item.received)
            self.pending[future] = item
            future.add_done_callback(self.wake)

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
                if item.segment.kind == "partial":  # what partials cost, and how much of it went on first words
                    self.counters["partial_ms_total"] += msg.encode_ms + msg.decode_ms
                    self.counters["wordless_done"] += item.segment.wordless
                    self.counters["wordless_empty"] += item.segment.wordless and not msg.text
            if item.segment.kind == "speculative":
                self.settle_guess(pub, item, msg)
            else:
                self.answer(pub, item.segment, msg)

    def settle_guess(self, pub: zmq.Socket, item: Queued, msg: schemas.Message) -> None:
        """A speculative decode is done: held for its final, the final's answer, or void."""
        guess = item.segment
        if isinstance(msg, schemas.Error):  # a guess that failed tells nobody; its final decodes anew
            self.take_back(item)
            return
        final = self.speculations.on_result(guess, msg)  # the final, if it came meanwhile
        if final is True and guess.ticket not in self.void_tickets:
            self.publish(pub, as_partial(msg))  # held for its final; news already (vad's endpoint adapts to it)
        elif not isinstance(final, bool):
            waiting = self.held_finals.pop(guess.stream, None)
            self.answer(pub, waiting or guess, final)
        self.link.done(guess)

    def answer(self, pub: zmq.Socket, segment: schemas.Segment, msg: schemas.Message) -> None:
        """Publish what answers `segment` (unless another worker has it now), then tell the broker."""
        if segment.ticket in self.void_tickets:
            self.void_tickets.discard(segment.ticket)
            self.counters["results_void"] += 1
        else:
            self.publish(pub, msg)
        self.link.done(segment)

    def take_back(self, item: Queued) -> None:
        """A speculation that cannot be decoded: the final waiting on it goes through the queue."""
        waiting = self.speculations.on_failure(item.segment)
        self.held_finals.pop(item.segment.stream, None)
        if waiting is not None:
            self.enqueue(waiting)
        self.link.done(item.segment)

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
    code = run_stage("asr", loop, argv)
    if any(t.name.startswith("inference") and t.is_alive() for t in threading.enumerate()):
        # A decode under way cannot be interrupted (onnxruntime holds its thread) and its result is
        # not wanted: the broker gave this worker's segments to others. Interpreter exit would join
        # the thread (seconds, for a long beam search), so leave now; sockets are closed already.
        log.info("stopped with a decode under way: not waited for")
        logging.shutdown()
        os._exit(code)
    return code
