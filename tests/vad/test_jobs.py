"""cut_job on real speech: pieces ≤ the limit, cut inside pauses, nothing lost."""
import numpy as np
import pytest

from vad.detector import VoiceDetector
from vad.jobs import cut_job
from tests.kit import CLIPS, build_stream, need_eval


def test_long_file_is_cut_at_pauses_into_pieces_under_the_limit():
    need_eval()
    pcm, placed = build_stream(CLIPS[:14], [0.5, 1.2, 0.8, 1.5] * 4)
    pieces = cut_job(pcm, VoiceDetector(2, 30), max_segment_s=10.0)
    assert len(pieces) >= 3
    assert all(len(p.pcm) // 2 <= 10 * 16000 for p in pieces)
    assert [p.offset for p in pieces] == sorted(p.offset for p in pieces)
    for piece in pieces[1:]:  # every cut lies in a pause between two clips' speech
        cut = piece.offset
        assert not any(c.speech_on < cut < c.speech_off for c in placed), f"cut at {cut / 16000:.2f} s is mid-clip"
    for clip in placed:  # every clip's speech is inside the pieces
        covered = sum(max(0, min(p.offset + len(p.pcm) // 2, clip.speech_off) - max(p.offset, clip.speech_on))
                      for p in pieces)
        assert covered == clip.speech_off - clip.speech_on, clip.clip


def test_short_file_is_one_piece_and_leading_silence_is_skipped():
    need_eval()
    pcm, placed = build_stream(CLIPS[:1], [], lead_s=3.0)
    pieces = cut_job(pcm, VoiceDetector(2, 30))
    assert len(pieces) == 1
    assert 3 * 16000 - 400 * 16 <= pieces[0].offset <= placed[0].speech_on


def test_silent_file_still_gives_one_piece():
    pieces = cut_job(bytes(16000 * 2 * 40), VoiceDetector(2, 30), max_segment_s=30.0)
    assert len(pieces) == 1 and len(pieces[0].pcm) == 30 * 16000 * 2


def test_speech_without_pauses_is_cut_at_the_quietest_frame_within_the_limit():
    rng = np.random.default_rng(1)
    tone = (np.sin(np.arange(16000 * 25) * 2 * np.pi * 220 / 16000) * 0.3 + rng.normal(0, 0.05, 16000 * 25))
    pcm = (tone * 32767).astype("<i2").tobytes()
    pieces = cut_job(pcm, VoiceDetector(0, 30), max_segment_s=10.0)
    assert sum(len(p.pcm) for p in pieces) <= len(pcm)
    assert all(len(p.pcm) // 2 <= 10 * 16000 for p in pieces)


def test_odd_and_empty_input():
    with pytest.raises(ValueError, match="not whole int16 samples"):
        cut_job(b"\0" * 3, VoiceDetector(2, 30))
    assert cut_job(b"", VoiceDetector(2, 30)) == []
