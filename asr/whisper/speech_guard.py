"""Guards against Whisper's hallucinations: text invented on silence, noise or in loops.

Three principled checks, each measured on the 60 eval clips to cost no accuracy
(asr/README.md, "Hallucination guard"):

* `voiced_ms`: webrtcvad on the window before decoding. A window with almost no
  voiced frames is not decoded at all (Whisper says "you" on digital silence
  with avg_logprob -0.7, which its own no-speech rule lets through). A caller that
  already judged the audio (the asr stage gets vad's judgement with each segment)
  passes `VoicedFrames` instead, and webrtcvad is not run twice.
* `is_silence`: Whisper's rule (no-speech probability above the threshold and a
  low average log-probability) extended by the other hallucination signal it
  already computes: a high no-speech probability with a repetitive transcript
  (compression ratio above its threshold) is silence too.
* `cut_repetition`: a transcript whose tokens loop is cut after the first round.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import webrtcvad

from asr.whisper.audio import float_to_int16
from asr.whisper.features import SAMPLE_RATE

VAD_FRAME = 480  # 30 ms at 16 kHz
VAD_SETTLING_FRAMES = 3  # webrtcvad calls its first 90 ms speech whenever there is any signal
VAD_MODE = 3  # the most aggressive: least likely to call noise speech


@dataclass(frozen=True)
class VoicedFrames:
    """A voice detector's judgement of some audio, made by the caller: one flag per frame.

    Audio sample s falls in frame (s + origin) // frame_samples; `after(n)` describes the
    same judgement for the audio from sample n on (a tail of it).
    """
    flags: np.ndarray  # bool [frames]
    frame_samples: int
    origin: int = 0

    def voiced_ms(self, start: int, end: int) -> int:
        """Milliseconds of voiced frames touching samples [start, end)."""
        first = max(0, (start + self.origin) // self.frame_samples)
        last = min(len(self.flags), -(-(end + self.origin) // self.frame_samples))
        return int(np.count_nonzero(self.flags[first:last])) * self.frame_samples * 1000 // SAMPLE_RATE

    def after(self, samples: int) -> VoicedFrames:
        return dataclasses.replace(self, origin=self.origin + samples)


def voiced_ms(audio: np.ndarray, mode: int = VAD_MODE) -> int:
    """Milliseconds of 16 kHz float audio that webrtcvad calls speech (after its settling frames)."""
    pcm = float_to_int16(audio)
    vad = webrtcvad.Vad(mode)
    voiced = 0
    for index in range(pcm.shape[0] // VAD_FRAME):
        frame = pcm[index * VAD_FRAME : (index + 1) * VAD_FRAME].tobytes()
        if vad.is_speech(frame, SAMPLE_RATE) and index >= VAD_SETTLING_FRAMES:
            voiced += 30
    return voiced


def is_silence(no_speech_prob: float, avg_logprob: float, compression_ratio: float,
               no_speech_threshold: float | None, logprob_threshold: float | None,
               compression_ratio_threshold: float | None) -> bool:
    """Whisper's no-speech rule, plus: likely no speech and a looping transcript."""
    if no_speech_threshold is None or no_speech_prob <= no_speech_threshold:
        return False
    unsure = logprob_threshold is None or avg_logprob < logprob_threshold  # None: whisper skips on no_speech_prob alone
    looping = compression_ratio_threshold is not None and compression_ratio > compression_ratio_threshold
    return unsure or looping


def _required_repeats(period: int) -> int:
    """How many back-to-back rounds of a `period`-token unit make a loop.

    Short units need many rounds ("no no no" is speech, 24 of the same token is
    not); phrases of six tokens or more loop after four rounds.
    """
    return max(4, -(-24 // period))


def find_loop(text_tokens: list[int], max_period: int = 40) -> tuple[int, int] | None:
    """(start, period) of the first run of ≥ _required_repeats(period) rounds, else None."""
    n = len(text_tokens)
    best: tuple[int, int] | None = None
    tokens = np.asarray(text_tokens, dtype=np.int64)
    for period in range(1, min(max_period, n // 2) + 1):
        needed = (_required_repeats(period) - 1) * period  # matches of token i with token i + period
        if needed > n - period:
            continue
        same = np.concatenate([[False], tokens[period:] == tokens[:-period], [False]])
        edges = np.flatnonzero(np.diff(same.astype(np.int8)))
        starts, ends = edges[::2], edges[1::2]
        long_runs = np.flatnonzero(ends - starts >= needed)
        if long_runs.size:
            start = int(starts[long_runs[0]])
            if best is None or start < best[0]:
                best = (start, period)
    return best


SEGMENT_REPEATS = 4  # the same sentence four times running ("Thank you." x 4) is a loop


def _segment_loop_end(tokens: tuple[int, ...], timestamp_begin: int) -> int | None:
    """Index just after the first of SEGMENT_REPEATS identical timed segments in a row, else None."""
    units: list[tuple[tuple[int, ...], int]] = []  # (text tokens, index after its closing timestamp)
    current: list[int] = []
    for index, token in enumerate(tokens):
        if token < timestamp_begin:
            current.append(token)
        elif current:
            units.append((tuple(current), index + 1))
            current = []
    for first in range(len(units) - SEGMENT_REPEATS + 1):
        if len({text for text, _ in units[first : first + SEGMENT_REPEATS]}) == 1:
            return units[first][1]
    return None


def cut_repetition(tokens: tuple[int, ...], timestamp_begin: int) -> tuple[int, ...] | None:
    """Tokens cut after the first round of a loop; None when there is no loop.

    A loop is a run of tokens repeated back to back (timestamps ignored when
    looking; a timestamp right after the cut is kept to close the segment), or
    SEGMENT_REPEATS identical timed segments in a row.
    """
    cuts = []
    text_positions = [i for i, token in enumerate(tokens) if token < timestamp_begin]
    loop = find_loop([tokens[i] for i in text_positions])
    if loop is not None:
        start, period = loop
        cut = text_positions[start + period - 1] + 1  # just after the first round's last token
        if cut < len(tokens) and tokens[cut] >= timestamp_begin:
            cut += 1
        cuts.append(cut)
    segment_cut = _segment_loop_end(tokens, timestamp_begin)
    if segment_cut is not None:
        cuts.append(segment_cut)
    return tokens[: min(cuts)] if cuts else None


def has_words(text: str) -> bool:
    """False for transcripts of punctuation alone (". . . ." on noise)."""
    return any(character.isalnum() for character in text)
