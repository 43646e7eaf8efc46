"""A diarization job in, a `Speakers` message (or an `Error`) out: the speaker stage's logic, no sockets."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from bus import pcm, schemas
from config.paths import model_dir, resolve_data_dir
from speaker.diarize.clustering import SpeakerCount
from speaker.diarize.pipeline import DiarizeOptions, diarize_with_centroids
from speaker.diarize.regions import speech_regions
from speaker.encoder.manifest import SpeakerModelError
from speaker.encoder.voice import VoiceEncoder
from speaker.voices import VoiceBook, VoiceError, check_name, voice_of

log = logging.getLogger(__name__)
STAGE = "speaker"


class DiarizeService:
    """Holds the embedding model (or why it could not load) and the tuned options."""

    def __init__(self, cfg, models_dir: str):
        self.cfg = cfg
        self.options = DiarizeOptions(threshold=cfg.threshold, step_s=cfg.step_s)
        self.model_path = Path(model_dir(models_dir, cfg.model))
        self.encoder: VoiceEncoder | None = None
        self.load_error = ""
        self.jobs_done = self.jobs_failed = 0
        self.audio_s = self.compute_s = 0.0
        self.voices = VoiceBook(Path(cfg.voices_dir).expanduser() if cfg.voices_dir
                                else resolve_data_dir(os.environ) / "speakers")
        self.load()

    def load(self) -> None:
        try:
            self.encoder = VoiceEncoder(self.model_path, self.cfg.threads)
            self.load_error = ""
        except (SpeakerModelError, OSError) as exc:
            self.encoder, self.load_error = None, str(exc)
            log.error("speaker model not loaded", extra={"error": self.load_error})

    def state(self) -> tuple[bool, str, dict]:
        counters = {"jobs_done": self.jobs_done, "jobs_failed": self.jobs_failed,
                    "audio_s": round(self.audio_s, 1), "rtf": round(self.compute_s / self.audio_s, 4) if self.audio_s else 0.0}
        if self.encoder is None:
            return False, f"model not loaded: {self.load_error}", counters
        return True, "ok", counters

    def handle(self, job: schemas.DiarizeJob | schemas.VoiceJob, worker: str) -> schemas.Message:
        """The answer to publish on job/<job>/."""
        if isinstance(job, schemas.VoiceJob) and job.op != "enroll":
            return self.voice_op(job)
        if self.encoder is None:
            self.load()  # the model may have been built since
        if self.encoder is None:
            self.jobs_failed += 1
            return schemas.Error(code="speaker_model_missing", message=self.load_error, job=job.job,
                                 permanent=False, stage=STAGE)
        if isinstance(job, schemas.VoiceJob):
            return self.voice_op(job)
        count = SpeakerCount(job.num_speakers, job.min_speakers, job.max_speakers)
        try:
            count.check()
        except ValueError as exc:
            self.jobs_failed += 1
            return schemas.Error(code="bad_speaker_count", message=str(exc), job=job.job, permanent=True, stage=STAGE)
        started = time.perf_counter()
        samples = np.frombuffer(job.pcm, dtype=pcm.DTYPE)
        regions = speech_regions(samples, self.cfg.vad_aggressiveness)
        if not regions:
            self.jobs_failed += 1
            return schemas.Error(code="no_speech", message="the audio has no speech to tell speakers apart in",
                                 job=job.job, permanent=True, stage=STAGE)
        turns, centroids = diarize_with_centroids(pcm.to_float(job.pcm), regions, self.encoder, self.options, count)
        named = self.voices.name_turns([{"start": round(t.start, 3), "end": round(t.end, 3), "speaker": t.speaker}
                                        for t in turns], centroids, self.cfg.name_threshold)
        seconds = time.perf_counter() - started
        self.jobs_done += 1
        self.audio_s += len(samples) / pcm.SAMPLE_RATE
        self.compute_s += seconds
        return schemas.Speakers(job=job.job, count=len({t.speaker for t in turns}), compute_ms=round(seconds * 1000, 1),
                                worker=worker, turns=named)

    def voice_op(self, job: schemas.VoiceJob) -> schemas.Message:
        """Enrol (the encoder is loaded), list or delete a named voice; a bad sample or name is a permanent Error."""
        try:
            if job.op == "enroll":
                check_name(job.name)  # before the embedding: a bad name costs nothing
                samples = np.frombuffer(job.pcm, dtype=pcm.DTYPE)
                embedding, speech_s = voice_of(pcm.to_float(job.pcm),
                                               speech_regions(samples, self.cfg.vad_aggressiveness),
                                               self.encoder, self.options)
                voice = self.voices.enroll(job.name, embedding, speech_s)
                log.info("voice enrolled", extra={"voice": voice.name, "speech_s": round(speech_s, 2)})
            elif job.op == "delete":
                if not self.voices.delete(job.name):
                    return schemas.Error(code="unknown_speaker", message=f"no enrolled speaker {job.name[:64]!r}",
                                         job=job.job, permanent=True, stage=STAGE)
                log.info("voice deleted", extra={"voice": job.name})
        except VoiceError as exc:
            return schemas.Error(code=exc.code, message=exc.message, job=job.job, permanent=True, stage=STAGE)
        return schemas.Voices(job=job.job, voices=self.voices.listing(), deleted=job.op == "delete")
