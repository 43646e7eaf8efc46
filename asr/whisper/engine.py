"""WhisperModel: a voxbus model directory on onnxruntime, and transcription.

The model directory (built by `voxbus model build`) holds encoder.onnx (and
encoder_draft.onnx, live partials' faster one), decoder.onnx (with a key/value
cache), decoder_attn.onnx (word timestamps), tokenizer.json and manifest.json.
Sessions are made once; `transcribe` does Whisper's sequential 30 s windowing
for audio of any length, `transcribe_segment` is the one-window fast path the
live asr stage uses, and `transcribe_batch` encodes several ≤ 30 s segments of a
file job per encoder run.

Each window: webrtcvad gate -> encoder -> decode with temperature fallback ->
no-speech rule -> repetition guard -> segments -> optional word timestamps.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.whisper import speech_guard
from asr.whisper.audio import validate_audio
from asr.whisper.decoding import DecodingOptions, DecodingResult, DecodingTask
from asr.whisper.fallback import decode_with_fallback
from asr.whisper.features import (FRAMES_PER_SECOND, HOP_LENGTH, N_FFT, N_FRAMES, N_SAMPLES, SAMPLE_RATE, content_frames,
                                  encoder_frames, log_mel_spectrogram, pad_or_trim, window_mel)
from asr.whisper.logit_filters import compression_ratio
from asr.whisper.manifest import (SPECIAL_ROLES, EncoderWindow, ModelFormatError, ModelManifest,  # noqa: F401
                                  ModelNotFoundError, load_manifest, verify_checksums)
from asr.whisper.onnx_session import EncodedWindows, WhisperSessions
from asr.whisper.options import TranscribeOptions, split_options
from asr.whisper.speech_guard import VoicedFrames
from asr.whisper.timeline import shift_times
from asr.whisper.tokenizer import TIME_PRECISION, Tokenizer
from asr.whisper.word_timing import TimedSegment, add_word_timestamps, find_alignment

logger = logging.getLogger(__name__)

INPUT_STRIDE = 2  # mel frames per encoder frame, i.e. per timestamp step
ENCODER_BATCH = 1  # windows per encoder run in transcribe_batch; measured: batching does not pay on CPU
# A one-window decode that stops this long before the segment's end, with voice left, is continued.
UNHEARD_TAIL_S = 1.0
# A decode in a window shorter than 30 s whose timestamps run this far past the audio heard the
# padding as speech (it repeats itself to fill the window): decode it again on a 30 s window.
WINDOW_OVERSHOOT_S = 1.0


@dataclass(frozen=True)
class TextSegment:  # not slots: the asr transcriber reads it with vars()
    start: float  # seconds from the start of the audio
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    tokens: tuple[int, ...]  # sampled ids, timestamps included
    temperature: float = 0.0  # of the decode that was kept
    compression_ratio: float = 0.0
    words: list[dict] | None = None  # {word, start, end, probability} with word_timestamps
    text_tokens: tuple[int, ...] = ()  # `tokens` without timestamps and eot: OpenAI's segment tokens


@dataclass(frozen=True)
class Result:
    text: str
    segments: list[TextSegment]
    language: str
    language_prob: float | None  # None when the language was given, not detected
    duration: float  # seconds of audio
    encode_ms: float  # features + encoder
    decode_ms: float  # decoder loop (and word timing)
    words: list[dict] | None = None  # every segment's words in order, with word_timestamps
    tokens: tuple[int, ...] = ()  # a one-window call's decode, timestamps included (a live partial's next prefix)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class _Timings:  # accumulated over the windows of one call
    encode_ms: float = 0.0
    decode_ms: float = 0.0


@dataclass(frozen=True)
class _Window:
    """One decoded window after the guards."""

    result: DecodingResult
    silent: bool  # no-speech rule: nothing to keep
    looped: bool  # the repetition guard cut the tokens


def _avg_logprob(result: DecodingResult, first: int, count: int) -> float:
    """The mean log probability of tokens[first:first + count] of one decode (a segment's, timestamps
    included); the decode's own avg_logprob when it kept no per-token figures."""
    scores = result.token_logprobs[first:first + count]
    if len(result.token_logprobs) != len(result.tokens) or not scores:
        return result.avg_logprob
    return round(float(np.mean(scores)), 4)


def _shifted(segment: TextSegment, seconds: float) -> TextSegment:
    """The segment with its times (and its words' times) moved later by `seconds`."""
    return dataclasses.replace(
        segment, **shift_times({"start": segment.start, "end": segment.end, "words": segment.words}, seconds))


class WhisperModel:
    """One loaded model: manifest, tokenizer and the onnxruntime sessions."""

    def __init__(self, model_dir: Path | str, threads: int | None = None, check_files: bool = False,
                 allow_spinning: bool = False, encoder_window: EncoderWindow | None = None,
                 draft_encoder: bool = False):
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive int or None, got {threads!r}")
        self.model_dir = Path(model_dir).expanduser()
        self.manifest = load_manifest(self.model_dir)
        if check_files:
            verify_checksums(self.model_dir, self.manifest)
        self.dims = self.manifest.dims
        # The window rule: the manifest's (written by the builder), a caller's override, else 30 s.
        self.encoder_window = encoder_window or self.manifest.encoder_window or EncoderWindow()
        self.tokenizer = Tokenizer.from_file(
            self.model_dir / "tokenizer.json", self.manifest.multilingual, self.manifest.languages or None
        )
        found = {role: getattr(self.tokenizer.special, role) for role in SPECIAL_ROLES}
        wrong = {role: (i, found[role]) for role, i in self.manifest.special_tokens.items() if found[role] != i}
        if wrong:
            raise ModelFormatError(f"{self.model_dir}: manifest and tokenizer.json disagree on {wrong}")
        # draft_encoder: also load encoder_draft.onnx, for decodes with the draft_encoder option (live partials)
        self.sessions = WhisperSessions(self.model_dir, self.dims["n_text_layer"], threads, allow_spinning,
                                        draft_encoder)
        logger.info("loaded %s (%s) from %s, %s threads", self.manifest.name, self.manifest.precision,
                    self.model_dir, threads or "default")

    @property
    def languages(self) -> tuple[str, ...]:
        return self.tokenizer.language_codes

    @property
    def multilingual(self) -> bool:
        return self.tokenizer.multilingual

    # --- entry points ---------------------------------------------------------------

    def transcribe(self, audio: np.ndarray, language: str | None = None, task: str = "transcribe",
                   prompt: str | None = None, **options: object) -> Result:
        """Audio of any length: Whisper's sequential 30 s windows, seeking by timestamps.

        prompt: text before the first window (like initial_prompt). options:
        DecodingOptions or TranscribeOptions fields by name (asr/README.md).
        """
        audio = validate_audio(audio)
        decoding, chaining = self._options(language, task, options, prompt)
        timings, started = _Timings(), time.perf_counter()
        # Half an FFT of silence after the audio is all its frames can see of whisper's 30 s padding.
        mel = log_mel_spectrogram(audio, self.dims["n_mels"], padding=N_FFT)
        timings.encode_ms += (time.perf_counter() - started) * 1000
        n_content = content_frames(audio.shape[0])
        all_tokens = list(self._prompt_tokens(decoding.prompt))
        prompt_reset_since, seek, segments, last_speech = 0, 0, [], 0.0
        language_prob = None
        while seek < n_content:
            window_frames = min(N_FRAMES, n_content - seek)
            window_audio = audio[seek * HOP_LENGTH : (seek + window_frames) * HOP_LENGTH]
            if not self._has_voice(window_audio, chaining):
                seek += window_frames
                continue
            window_prompt = tuple(all_tokens[prompt_reset_since:]) or None
            # Like whisper, a short window is zero-padded in mel space (not with silent frames),
            # to the window the model's rule gives for its audio.
            encoded = self._encode(self._pad_window(mel[:, seek : seek + window_frames], timings)[None], timings)
            window = self._decode(encoded, 0, dataclasses.replace(decoding, prompt=window_prompt), chaining, timings)
            if decoding.language is None:  # detected on the first decoded window, then kept
                decoding = dataclasses.replace(decoding, language=window.result.language)
                language_prob = window.result.language_prob
            if window.silent:
                seek += window_frames
                continue
            pieces, resume_at = self.tokenizer.split_at_timestamps(window.result.tokens, keep_trailing=window.looped)
            if window.looped:  # decode again from the loop's start, without the looping text as prompt
                resume_at = self._loop_resume_step(window.result.tokens)
            new, last_speech = self._segments(pieces, seek, window_frames, window, encoded, decoding, chaining,
                                              last_speech, timings)
            segments += new
            all_tokens += [token for piece in pieces for token in piece[2]]
            seek += window_frames if resume_at is None else resume_at * INPUT_STRIDE
            if resume_at is not None and chaining.word_timestamps and new and new[-1].words:
                # Whisper: resume after the last word rather than the last timestamp.
                seek = max(seek, round(new[-1].words[-1]["end"] * FRAMES_PER_SECOND))
            if not chaining.condition_on_previous_text or window.looped or \
                    window.result.temperature > chaining.prompt_reset_on_temperature:
                prompt_reset_since = len(all_tokens)
        return self._result(segments, decoding.language, language_prob, audio, timings, chaining)

    def transcribe_segment(self, audio: np.ndarray, language: str | None = None, task: str = "transcribe",
                           prompt: str | None = None, voiced: VoicedFrames | None = None,
                           prefix: tuple[int, ...] | None = None, **options: object) -> Result:
        """Fast path for one live segment of at most 30 s: one encoder run, one decode (plus fallback).

        prompt: context before the segment (the stream's previous final text).
        voiced: the caller's voice judgement of `audio` (else webrtcvad runs here).
        prefix: token ids (a Result's `tokens`) the decode must start with; the model only
        decodes what follows them.
        """
        audio = validate_audio(audio)
        if audio.shape[0] > N_SAMPLES:
            raise ValueError(f"segment is {audio.shape[0] / SAMPLE_RATE:.1f} s; at most 30 s, or use transcribe()")
        return self.transcribe_batch([audio], language, task, prompt, voiced=[voiced], prefix=prefix, **options)[0]

    def transcribe_batch(self, segments: Sequence[np.ndarray], language: str | None = None,
                         task: str = "transcribe", prompt: str | None = None, batch_size: int = ENCODER_BATCH,
                         voiced: Sequence[VoicedFrames | None] | None = None, prefix: tuple[int, ...] | None = None,
                         **options: object) -> list[Result]:
        """Several independent segments of ≤ 30 s (one file job), encoded `batch_size` per encoder run.

        Each segment is decoded on its own, with the same prompt, prefix and options; `voiced`, one
        per segment (or None), is the caller's voice judgement of each.
        """
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        audios = [validate_audio(audio) for audio in segments]
        for index, audio in enumerate(audios):
            if audio.shape[0] > N_SAMPLES:
                raise ValueError(f"segment {index} is {audio.shape[0] / SAMPLE_RATE:.1f} s; at most 30 s")
        decoding, chaining = self._options(language, task, options, prompt)
        decoding = dataclasses.replace(decoding, prefix=tuple(prefix) if prefix else None)
        judged = list(voiced) if voiced is not None else [None] * len(audios)
        if len(judged) != len(audios):
            raise ValueError(f"voiced: {len(judged)} judgements for {len(audios)} segments")
        results: list[Result | None] = [None] * len(audios)
        voiced = [i for i, audio in enumerate(audios)
                  if content_frames(audio.shape[0]) > 0 and self._has_voice(audio, chaining, judged[i])]
        for index in set(range(len(audios))) - set(voiced):
            results[index] = self._result([], decoding.language, None, audios[index], _Timings(), chaining)
        for first in range(0, len(voiced), batch_size):
            group = voiced[first : first + batch_size]
            timings = _Timings()
            encoded = self._encode(self._window_mels([audios[i] for i in group], timings, chaining.draft_window),
                                   timings, chaining.draft_encoder)
            share = _Timings(timings.encode_ms / len(group))
            for row, index in enumerate(group):
                results[index] = self._one_window(audios[index], encoded, row, decoding, chaining,
                                                  dataclasses.replace(share), judged[index])
        return results  # type: ignore[return-value]  # every index was filled above

    def check_options(self, language: str | None = None, task: str = "transcribe", prompt: str | None = None,
                      **options: object) -> None:
        """Raise ValueError naming the first bad option, as transcribe() would, without transcribing."""
        self._options(self.resolve_language(language, task), task, options, prompt)

    def resolve_language(self, language: str | None, task: str = "transcribe") -> str | None:
        """The language code to decode with, None to detect it; ValueError if the
        model cannot do this language or task."""
        if language == "auto":
            language = None
        if not self.tokenizer.multilingual:
            if language not in (None, "en"):
                raise ValueError(f"language {language!r}: {self.manifest.name} is an English-only model")
            if task == "translate":
                raise ValueError(f"task 'translate': {self.manifest.name} is an English-only model")
            return "en"
        if language is not None and language not in self.languages:
            raise ValueError(f"language {language!r} is not one of this model's {len(self.languages)} codes")
        return language

    # --- one window -----------------------------------------------------------------------

    def _one_window(self, audio: np.ndarray, encoded: EncodedWindows, row: int, decoding: DecodingOptions,
                    chaining: TranscribeOptions, timings: _Timings, voiced: VoicedFrames | None = None) -> Result:
        window = self._decode(encoded, row, decoding, chaining, timings)
        if chaining.second_pass and self._overshoots(window, audio, encoded):
            logger.info("timestamps past the audio in a %.1f s window: decoding again on 30 s",
                        encoded.cross_k.shape[3] * INPUT_STRIDE / FRAMES_PER_SECOND)
            started = time.perf_counter()
            mel = window_mel(audio, self.dims["n_mels"], N_FRAMES, self.encoder_window.pad)[None]
            timings.encode_ms += (time.perf_counter() - started) * 1000
            encoded, row = self._encode(mel, timings), 0
            window = self._decode(encoded, row, decoding, chaining, timings)
        segments: list[TextSegment] = []
        if not window.silent:
            pieces, _ = self.tokenizer.split_at_timestamps(window.result.tokens, keep_trailing=True)
            segments, _ = self._segments(pieces, 0, content_frames(audio.shape[0]), window,
                                         encoded.window(row), decoding, chaining, 0.0, timings)
            language = decoding.language or window.result.language
            if chaining.second_pass:
                segments += self._unheard_tail(audio, segments, dataclasses.replace(decoding, language=language),
                                               chaining, timings, voiced, encoded.window(row))
        return self._result(segments, window.result.language, window.result.language_prob, audio, timings, chaining,
                            tokens=() if window.silent else window.result.tokens)

    def _overshoots(self, window: _Window, audio: np.ndarray, encoded: EncodedWindows) -> bool:
        """True when a short window's decode put a timestamp WINDOW_OVERSHOOT_S past the audio's end."""
        if encoded.cross_k.shape[3] * INPUT_STRIDE >= N_FRAMES or window.silent:
            return False
        begin = self.tokenizer.special.timestamp_begin
        stamps = [t - begin for t in window.result.tokens if t >= begin]
        return bool(stamps) and max(stamps) * TIME_PRECISION > audio.shape[0] / SAMPLE_RATE + WINDOW_OVERSHOOT_S

    def _unheard_tail(self, audio: np.ndarray, segments: list[TextSegment], decoding: DecodingOptions,
                      chaining: TranscribeOptions, timings: _Timings, voiced: VoicedFrames | None = None,
                      encoded: EncodedWindows | None = None) -> list[TextSegment]:
        """Segments for the audio after the last one, when the decoder closed the window early.

        Whisper may end a window with a lone timestamp and end-of-text while speech goes on
        (its own transcribe() then drops the rest of the window). A live segment has no next
        window, so the rest is decoded as a window of its own, prompted with the text so far.
        """
        begin = self.tokenizer.special.timestamp_begin
        # The decoder's own last timestamp, not the word-aligned end: words after it were not heard.
        stamps = [t - begin for t in (segments[-1].tokens if segments else ()) if t >= begin]
        offset = stamps[-1] * TIME_PRECISION if stamps else 0.0
        if segments and segments[-1].tokens and segments[-1].tokens[-1] < begin and encoded is not None:
            # The decoder stopped on text, without a closing timestamp ("<|0.00|> She" <|endoftext|>):
            # where the heard words end is only known from the alignment of its cross-attention.
            offset = max(offset, self._last_word_end(encoded, segments, decoding, audio, chaining, timings))
        cut = int(round(offset * SAMPLE_RATE))
        tail = audio[cut:]
        tail_voiced = voiced.after(cut) if voiced is not None else None
        if offset <= 0 or tail.shape[0] < UNHEARD_TAIL_S * SAMPLE_RATE \
                or not self._has_voice(tail, chaining, tail_voiced):
            return []
        said = tuple(t for s in segments for t in s.tokens if t < self.tokenizer.special.eot)
        prompt = self._prompt_tokens(decoding.prompt) + said if chaining.condition_on_previous_text else decoding.prompt
        encoded = self._encode(self._window_mels([tail], timings), timings, chaining.draft_encoder)
        rest = self._one_window(tail, encoded, 0, dataclasses.replace(decoding, prompt=prompt, prefix=None), chaining,
                                timings, tail_voiced)
        return [_shifted(segment, offset) for segment in rest.segments]

    def window_frames(self, n_samples: int, draft: bool = False) -> int:
        """Mel frames of the encoder window for `n_samples` of audio, by the model's window rule."""
        rule = self.encoder_window
        return encoder_frames(n_samples, rule.floor(draft), rule.pad_s)

    def _last_word_end(self, encoded: EncodedWindows, segments: list[TextSegment], decoding: DecodingOptions,
                       audio: np.ndarray, chaining: TranscribeOptions, timings: _Timings) -> float:
        """Seconds into the window where the last decoded word ends (0.0 when unknown)."""
        if segments[-1].words:
            return float(segments[-1].words[-1]["end"])
        if not self.sessions.has_attention_decoder:
            return 0.0
        started = time.perf_counter()
        eot = self.tokenizer.special.eot
        text_tokens = [t for s in segments for t in s.tokens if t < eot]
        sot_sequence = self.tokenizer.sot_sequence(decoding.language, decoding.task, timestamps=True)
        alignment = find_alignment(lambda tokens: self.sessions.cross_attention(encoded, tokens), self.tokenizer,
                                   sot_sequence, text_tokens, content_frames(audio.shape[0]), decoding.language)
        timings.decode_ms += (time.perf_counter() - started) * 1000
        return alignment[-1].end if alignment else 0.0

    def _window_mels(self, audios: list[np.ndarray], timings: _Timings, draft: bool = False) -> np.ndarray:
        """[N, n_mels, n_frames]: each segment's window features (counted as encoder time);
        n_frames is the window rule's (a draft's) for the longest segment of the batch."""
        started = time.perf_counter()
        n_frames = max(self.window_frames(audio.shape[0], draft) for audio in audios)
        mels = np.stack([window_mel(audio, self.dims["n_mels"], n_frames, self.encoder_window.pad)
                         for audio in audios])
        timings.encode_ms += (time.perf_counter() - started) * 1000
        return mels

    def _pad_window(self, mel: np.ndarray, timings: _Timings) -> np.ndarray:
        """transcribe()'s window: `mel` (content frames) padded to the rule's window."""
        started = time.perf_counter()
        n_frames = self.window_frames(mel.shape[1] * HOP_LENGTH)
        window = pad_or_trim(mel, n_frames)
        if self.encoder_window.pad == "silence" and mel.shape[1] < n_frames:
            window = window.copy()
            window[:, mel.shape[1]:] = max(float(mel.max()) - 2.0, -1.5)  # see features.window_mel
        timings.encode_ms += (time.perf_counter() - started) * 1000
        return window

    def _encode(self, mels: np.ndarray, timings: _Timings, draft: bool = False) -> EncodedWindows:
        started = time.perf_counter()
        encoded = self.sessions.encode(mels, draft)
        timings.encode_ms += (time.perf_counter() - started) * 1000
        return encoded

    def _decode(self, encoded: EncodedWindows, row: int, decoding: DecodingOptions, chaining: TranscribeOptions,
                timings: _Timings) -> _Window:
        """Decode window `row` with fallback, then apply the no-speech rule and the repetition guard."""
        started = time.perf_counter()
        detected: list[DecodingResult] = []

        def decode_at(temperature: float) -> DecodingResult:
            language = detected[0].language if detected else decoding.language
            options = dataclasses.replace(decoding, temperature=temperature, language=language)
            task = DecodingTask(self.tokenizer, options, self.dims["n_text_ctx"], self.dims["n_audio_ctx"])
            result = task.run(self.sessions.decoder_inference(encoded.window(row, task.n_group)))
            detected.append(result)
            return result

        timestamp_begin = self.tokenizer.special.timestamp_begin

        def loops(result: DecodingResult) -> bool:
            return speech_guard.cut_repetition(result.tokens, timestamp_begin) is not None

        result = decode_with_fallback(decode_at, chaining, loops if chaining.repetition_guard else None)
        if detected[0].language_prob is not None:  # keep what the first decode detected
            result = dataclasses.replace(result, language_prob=detected[0].language_prob,
                                         language_probs=detected[0].language_probs)
        silent = speech_guard.is_silence(result.no_speech_prob, result.avg_logprob, result.compression_ratio,
                                         chaining.no_speech_threshold, chaining.logprob_threshold,
                                         chaining.compression_ratio_threshold if chaining.strict_no_speech else None)
        cut = None
        if not silent and chaining.repetition_guard:
            cut = speech_guard.cut_repetition(result.tokens, self.tokenizer.special.timestamp_begin)
            if cut is not None:
                text = self.tokenizer.decode(cut).strip()
                logger.info("repetition guard cut %d of %d tokens", len(result.tokens) - len(cut), len(result.tokens))
                result = dataclasses.replace(result, tokens=cut, text=text, compression_ratio=compression_ratio(text),
                                             token_logprobs=result.token_logprobs[:len(cut)])
        timings.decode_ms += (time.perf_counter() - started) * 1000
        return _Window(result, silent, cut is not None)

    def _loop_resume_step(self, kept: tuple[int, ...]) -> int | None:
        """Timestamp step that closes the tokens kept before a loop; None (the window end) if there is none."""
        if kept and kept[-1] >= self.tokenizer.special.timestamp_begin:
            step = kept[-1] - self.tokenizer.special.timestamp_begin
            return step if step > 0 else None
        return None

    def _has_voice(self, audio: np.ndarray, chaining: TranscribeOptions, voiced: VoicedFrames | None = None) -> bool:
        if chaining.min_voiced_ms <= 0:
            return True
        if voiced is not None:  # judged already (vad): no second webrtcvad pass
            return voiced.voiced_ms(0, audio.shape[0]) >= chaining.min_voiced_ms
        return speech_guard.voiced_ms(audio) >= chaining.min_voiced_ms

    # --- segments, words, options ---------------------------------------------------------

    def _segments(self, pieces: list, seek: int, window_frames: int, window: _Window, encoded: EncodedWindows,
                  decoding: DecodingOptions, chaining: TranscribeOptions, last_speech: float,
                  timings: _Timings) -> tuple[list[TextSegment], float]:
        """Timed pieces of one window -> Segments (with words when asked); returns them and the
        end of the last speech so far. encoded: this window alone (batch 1)."""
        offset = seek / FRAMES_PER_SECOND
        eot = self.tokenizer.special.eot
        drafts: list[tuple[TimedSegment, tuple[int, ...], str, float]] = []
        first = 0  # pieces are consecutive slices of the window's tokens: where this one starts
        for start_step, end_step, tokens in pieces:
            first += len(tokens)
            avg_logprob = _avg_logprob(window.result, first - len(tokens), len(tokens))
            start = offset + start_step * TIME_PRECISION
            end = offset + (window_frames / FRAMES_PER_SECOND if end_step is None else end_step * TIME_PRECISION)
            text_tokens = [t for t in tokens if t < eot]
            text = self.tokenizer.decode(text_tokens).strip()
            # Whisper drops instantaneous or empty segments; punctuation alone is noise too.
            if start == end or not speech_guard.has_words(text):
                continue
            drafts.append((TimedSegment(start, end, text_tokens), tokens, text, avg_logprob))
        if chaining.word_timestamps and drafts:
            started = time.perf_counter()
            last_speech = self._add_words(encoded, [d[0] for d in drafts], window.result.language, decoding.task,
                                          window_frames, offset, last_speech, chaining)
            timings.decode_ms += (time.perf_counter() - started) * 1000
        result = window.result
        segments = [TextSegment(round(timed.start, 3), round(timed.end, 3), text, avg_logprob,
                                result.no_speech_prob, tokens, result.temperature, compression_ratio(text),
                                timed.words if chaining.word_timestamps else None, tuple(timed.text_tokens))
                    for timed, tokens, text, avg_logprob in drafts]
        return segments, last_speech

    def _add_words(self, encoded: EncodedWindows, drafts: list[TimedSegment], language: str, task: str,
                   window_frames: int, offset: float, last_speech: float, chaining: TranscribeOptions) -> float:
        sot_sequence = self.tokenizer.sot_sequence(language, task, timestamps=True)
        text_tokens = [token for draft in drafts for token in draft.text_tokens]
        alignment = find_alignment(lambda tokens: self.sessions.cross_attention(encoded, tokens), self.tokenizer,
                                   sot_sequence, text_tokens, window_frames, language)
        return add_word_timestamps(drafts, alignment, offset, last_speech,
                                   chaining.prepend_punctuations, chaining.append_punctuations)

    def _options(self, language: str | None, task: str, options: dict,
                 prompt: str | None) -> tuple[DecodingOptions, TranscribeOptions]:
        decoding_fields, chaining = split_options(options)
        language = self.resolve_language(language, task)
        allowed = decoding_fields.get("allowed_languages")
        if isinstance(allowed, tuple):
            unknown = [code for code in allowed if code not in self.languages]
            if unknown:
                raise ValueError(f"allowed_languages: {', '.join(map(repr, unknown))} not among this model's "
                                 f"{len(self.languages)} language codes")
        if prompt is not None and not isinstance(prompt, str):
            raise ValueError(f"prompt must be a string or None, got {prompt!r}")
        if chaining.word_timestamps and not self.sessions.has_attention_decoder:
            raise ValueError(f"word_timestamps: {self.model_dir} has no decoder_attn.onnx (rebuild the model)")
        prompt_text = " ".join(p.strip() for p in (chaining.initial_prompt, prompt) if p and p.strip()) or None
        decoding = DecodingOptions(language=language, task=task, prompt=prompt_text, **decoding_fields)
        return decoding, chaining

    def _prompt_tokens(self, prompt: str | tuple[int, ...] | None) -> tuple[int, ...]:
        if isinstance(prompt, str):
            return tuple(self.tokenizer.encode(" " + prompt.strip()))
        return prompt or ()

    def _result(self, segments: list[TextSegment], language: str | None, language_prob: float | None,
                audio: np.ndarray, timings: _Timings, chaining: TranscribeOptions,
                tokens: tuple[int, ...] = ()) -> Result:
        # Decoding all tokens at once (not joining segment texts) keeps languages
        # written without spaces right.
        text = self.tokenizer.decode(t for s in segments for t in s.tokens if t < self.tokenizer.special.eot)
        words = [word for s in segments for word in (s.words or [])] if chaining.word_timestamps else None
        return Result(text=text.strip(), segments=segments,
                      language=language or "en", language_prob=language_prob,
                      duration=audio.shape[0] / SAMPLE_RATE, encode_ms=timings.encode_ms,
                      decode_ms=timings.decode_ms, words=words, tokens=tokens)
