"""gateway/ws_speakers.py: finals held for their live label, in order, and merged into the event."""
from __future__ import annotations

import pytest

from bus import schemas
from config.schema import SpeakerConfig
from gateway.ws_protocol import ProtocolError, SessionConfig
from gateway.ws_speakers import SpeakerLabels, labelled, speaker_check


def _final(utt: int, start: float = 0.0, end: float = 1.0) -> schemas.Final:
    return schemas.Final(utt=utt, text="x", start=start, end=end, stream="s")


def _label(utt: int, *turns) -> schemas.Speakers:
    return schemas.Speakers(stream="s", utt=utt, turns=[{"start": a, "end": b, "speaker": who} for a, b, who in turns])


def test_a_final_waits_for_its_label_and_others_pass():
    labels = SpeakerLabels(wait_s=2.0)
    assert labels.take(_final(0), now=0.0) == []
    partial = schemas.Partial(utt=1, text="y", start=1.0, end=1.5, stream="s")
    assert labels.take(partial, now=0.1) == [(partial, None)]
    out = labels.take(_label(0, (0.0, 1.0, "SPEAKER_1")), now=0.2)
    assert [(m.utt, turns[0]["speaker"]) for m, turns in out] == [(0, "SPEAKER_1")]
    assert labels.wait(0.3) is None


def test_finals_keep_their_order_and_a_late_label_lets_them_go_unlabelled():
    labels = SpeakerLabels(wait_s=2.0)
    labels.take(_final(0), now=0.0)
    assert labels.take(_label(1, (1.0, 2.0, "SPEAKER_2")), now=0.1) == []  # early: kept for utt 1
    assert labels.take(_final(1, 1.0, 2.0), now=0.2) == []  # behind utt 0
    assert labels.wait(1.0) == pytest.approx(1.0)
    out = labels.take(None, now=2.0)
    assert [(m.utt, turns) for m, turns in out] == [(0, None), (1, [{"start": 1.0, "end": 2.0, "speaker": "SPEAKER_2"}])]
    assert labels.unlabelled == 1


def test_a_change_inside_a_final_splits_it_at_the_word():
    event = {"type": "final", "text": "yes no", "start": 0.0, "end": 2.0,
             "segments": [{"start": 0.0, "end": 2.0, "text": "yes no"}],
             "words": [{"word": " yes", "start": 0.1, "end": 0.8}, {"word": " no", "start": 1.2, "end": 1.9}]}
    out = labelled(event, [{"start": 0.0, "end": 1.0, "speaker": "A"}, {"start": 1.0, "end": 2.0, "speaker": "B"}])
    assert [w["speaker"] for w in out["words"]] == ["A", "B"]
    assert [(s["text"], s["speaker"]) for s in out["segments"]] == [("yes", "A"), ("no", "B")]
    assert "words" not in out["segments"][0] and out["speaker"] in ("A", "B")
    assert labelled(event, None) is event


def test_speakers_need_the_live_speaker_stage():
    check = speaker_check(lambda config: None, SpeakerConfig(enabled=True, live=False))
    check(SessionConfig())
    with pytest.raises(ProtocolError) as caught:
        check(SessionConfig(speakers=True))
    assert caught.value.code == "speakers_unavailable" and "live = true" in caught.value.message
    speaker_check(lambda config: None, SpeakerConfig(enabled=True, live=True))(SessionConfig(speakers=True))
