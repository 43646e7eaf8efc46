"""Turn one Segment into the messages the asr stage publishes (no sockets here).

`SegmentTranscriber` holds the model and a little per-stream state: the previous
final text of each live stream, used as the prompt for the next utterance
(bounded by `asr.prompt_max_chars`), and with `asr.partial_prefix` each live
utterance's last two partial decodes, whose agreed tokens the next partial starts from.
"""
from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Protocol

import numpy as np

from asr.partial_prefix import PartialPrefixes
from asr.whisper.manifest import EncoderWindow
from asr.whisper.speech_guard import VoicedFrames
from asr.whisper.timeline import shift_times
from bus import pcm
from bus.pcm import SAMPLE_RATE
from bus.schemas import TRANSCRIPT_TYPES, Error, Segment, Transcript
from config.schema import AsrConfig

log = logging.getLogger(__name__)
MAX_STREAMS_REMEMBERED = 1024
PARTIAL_CONTEXT_MIN_S = 1.0
# A partial's decode stops after PARTIAL_TOKENS + PARTIAL_TOKENS_PER_S tokens per second of its audio:
# speech runs at about 4 text tokens a second, and a decode that loops on the window's padding would
# otherwise take up to 224 steps (0.7 s for tiny) while other streams wait.
PARTIAL_TOKENS = 10
PARTIAL_TOKENS_PER_S = 6


class Tokens(Protocol):
    def starts_word(self, token: int) -> bool: ...


class Model(Protocol):
    encoder_window: EncoderWindow
    tokenizer: Tokens

    def transcribe_segment(self, audio: np.ndarray, **options): ...


class SegmentTranscriber:
    def __init__(self, model: Model, cfg: AsrConfig, worker: str, default_language: str):
        self.model = model
        self.cfg = cfg
        self.worker = worker
        self.default_language = default_language
        self.context: OrderedDict[str, str] = OrderedDict()  # stream → last final text
        self.prefixes = PartialPrefixes(model.tokenizer.starts_word) if cfg.partial_prefix else None

    def transcribe(self, segment: Segment, received: float) -> Transcript | Error:
        started = time.monotonic()
        utterance = self._live_partial(segment)
        try:
            audio = pcm.to_float(segment.pcm)
            prefix = self.prefixes.prefix(utterance, audio.shape[0]) if utterance else ()
            heard = utterance is not None and self.prefixes.heard(utterance)
            result = self.model.transcribe_segment(
                audio, language=self._language(segment), task=segment.task, prompt=self._prompt(segment),
                voiced=voiced_frames(segment), prefix=prefix or None,
                **{**self._defaults(segment, heard), **segment.options})
        except ValueError as exc:  # bad audio or bad options: the sender's fault, permanent
            log.warning("segment rejected: %s", exc, extra=self._where(segment))
            return Error.about(segment, "bad_segment", str(exc), permanent=True, stage="asr")
        if utterance:
            self.prefixes.add(utterance, audio.shape[0], result.tokens)
        return self._transcript(segment, result, queue_ms=(started - received) * 1000)

    def published(self, msg: Transcript) -> None:
        """A live final went out: its text is the context (prompt) of the stream's next utterance,
        and its utterance (and any before it) needs no partial prefix any more.
        Called by the thread that publishes, so decodes running in parallel never race on it."""
        if msg.stream is None or msg.kind != "final":
            return
        if msg.text:
            self._remember(msg.stream, msg.text)
        if self.prefixes is not None:
            self.prefixes.forget(lambda key: key[0] != msg.stream or key[1] > msg.utt)

    def _live_partial(self, segment: Segment) -> tuple | None:
        """The key under which a live partial's decodes are kept for its successors (None: not kept).
        The offset is part of it: an utterance longer than a segment starts again at a new offset."""
        if self.prefixes is None or segment.kind != "partial" or segment.stream is None or segment.options:
            return None
        return segment.stream, segment.utt, segment.offset

    def _defaults(self, segment: Segment, heard: bool = False) -> dict:
        """Decoding options from [asr]; a segment's own options (file jobs) override them.
        heard: this worker has decoded words of the segment's utterance already."""
        cfg = self.cfg
        if segment.kind == "partial":
            # Soon replaced: greedy, no fallback, no second pass, no word timing, a bounded number
            # of tokens, the draft encoder (asr.draft_encoder); and on the draft window, except while
            # its utterance has no words yet where the model finds the first words sooner on the full
            # one (tiny.en: 2 of 12 bench clips by 0.2 s; not base). vad marks a partial wordless until
            # the words reach it: one sent before then but decoded after is a draft again here.
            first_words_full = segment.wordless and not heard and not self.model.encoder_window.first_words_draft
            sample_len = PARTIAL_TOKENS + int(PARTIAL_TOKENS_PER_S * pcm.seconds(segment.pcm))
            return {"temperature": [0.0], "second_pass": False, "draft_window": not first_words_full,
                    "draft_encoder": cfg.draft_encoder, "sample_len": sample_len}
        options = {"temperature": list(cfg.temperatures),
                   "compression_ratio_threshold": cfg.compression_ratio_threshold,
                   "logprob_threshold": cfg.logprob_threshold,
                   "no_speech_threshold": cfg.no_speech_threshold,
                   "word_timestamps": cfg.word_timestamps}
        if cfg.beam_size > 1:
            # length_penalty 0 means Whisper's default, simple length normalisation (its None)
            options.update(beam_size=cfg.beam_size, patience=cfg.patience,
                           length_penalty=cfg.length_penalty or None)
        else:
            options["best_of"] = cfg.best_of
        if cfg.allowed_languages:
            options["allowed_languages"] = list(cfg.allowed_languages)
        return options

    def forget(self, stream: str) -> None:
        self.context.pop(stream, None)
        if self.prefixes is not None:
            self.prefixes.forget(lambda key: key[0] != stream)

    def _language(self, segment: Segment) -> str | None:
        lang = segment.language or "auto"
        if lang == "auto" and self.default_language and self.default_language != "auto":
            return self.default_language
        return None if lang == "auto" else lang

    def _prompt(self, segment: Segment) -> str | None:
        parts = [segment.prompt or ""]
        # The previous final as context, except for a partial under PARTIAL_CONTEXT_MIN_S: on so little
        # audio Whisper tends to repeat the prompt (the last utterance's text) as if it were heard.
        short_partial = segment.kind == "partial" and pcm.seconds(segment.pcm) < PARTIAL_CONTEXT_MIN_S
        if segment.stream is not None and self.cfg.condition_on_previous_text and not short_partial:
            parts.append(self.context.get(segment.stream, ""))
        text = " ".join(p for p in parts if p).strip()
        limit = self.cfg.prompt_max_chars
        return (text[-limit:] if limit else "") or None

    def _remember(self, stream: str, text: str) -> None:
        self.context[stream] = text[-self.cfg.prompt_max_chars:]
        self.context.move_to_end(stream)
        while len(self.context) > MAX_STREAMS_REMEMBERED:
            self.context.popitem(last=False)

    def _transcript(self, segment: Segment, result, queue_ms: float) -> Transcript:
        base = segment.offset / SAMPLE_RATE
        segments = [shift_times(s, base) for s in _plain_segments(result.segments, verbose=segment.job is not None)]
        words = [shift_times(w, base) for w in getattr(result, "words", None) or []]
        duration = len(segment.pcm) / 2 / SAMPLE_RATE
        return TRANSCRIPT_TYPES[segment.kind](
            utt=segment.utt, text=result.text.strip(),
            start=round(base, 3), end=round(base + duration, 3),
            stream=segment.stream, job=segment.job, segments=segments, words=words or None,
            language=result.language, language_prob=result.language_prob, worker=self.worker,
            encode_ms=round(result.encode_ms, 2), decode_ms=round(result.decode_ms, 2),
            queue_ms=round(queue_ms, 2), index=segment.index, count=segment.count,
            is_speech_final=segment.kind == "final" and segment.stream is not None,  # a guess: once confirmed
            ts=time.time(), ts_end_of_speech=segment.ts_end_of_speech)

    @staticmethod
    def _where(segment: Segment) -> dict:
        return {"stream": segment.stream, "job": segment.job, "utt": segment.utt}


def voiced_frames(segment: Segment) -> VoicedFrames | None:
    """vad's voice judgement of the segment's audio, for the engine's silence gate (None: not judged)."""
    if not segment.voiced:
        return None
    frame_samples = SAMPLE_RATE * segment.voiced_frame_ms // 1000
    origin = segment.offset - (segment.utt_offset if segment.utt_offset is not None else segment.offset)
    return VoicedFrames(np.frombuffer(segment.voiced, np.uint8) != 0, frame_samples, origin)


PLAIN_SEGMENT = ("start", "end", "text", "avg_logprob", "no_speech_prob", "words")  # the contract's fields
# What OpenAI's verbose_json adds per segment: sent for file jobs only (the answers that have a
# verbose_json), so live finals, and the store's rows of them, stay as small as before.
VERBOSE_SEGMENT = ("text_tokens", "temperature", "compression_ratio")


def _plain_segments(segments, verbose: bool = False) -> list[dict]:
    """The contract's segment fields (with `verbose`, also VERBOSE_SEGMENT's); the timestamped token ids
    stay here."""
    keep = PLAIN_SEGMENT + (VERBOSE_SEGMENT if verbose else ())
    out = []
    for seg in segments:
        seg = seg if isinstance(seg, dict) else vars(seg)
        out.append({k: list(seg[k]) if k == "text_tokens" else seg[k] for k in keep if k in seg})
    return out

