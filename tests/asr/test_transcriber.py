"""SegmentTranscriber: [asr] options reach the model, offsets move times onto the stream."""
from types import SimpleNamespace

from asr.transcriber import SegmentTranscriber
from asr.whisper.manifest import EncoderWindow
from bus.schemas import Error, Segment
from config import load_config


class RecordingModel:
    """Stands in for WhisperModel in this unit test of one class: records the options it gets."""

    def __init__(self):
        self.calls = []
        self.encoder_window = EncoderWindow(12.0, 1.0, draft_floor_s=8.0)
        self.tokenizer = SimpleNamespace(starts_word=lambda token: token % 10 == 0)  # 10, 20, ... start words
        self.tokens = [(10, 11, 20, 21), (10, 11, 20, 22, 30), (10, 11, 20, 22, 30, 31)]

    def transcribe_segment(self, audio, **options):
        self.calls.append(options)
        words = [{"word": " hi", "start": 0.5, "end": 0.9, "probability": 0.9}]
        tokens = self.tokens[min(len(self.calls), len(self.tokens)) - 1]
        return SimpleNamespace(text=" hi", language="en", language_prob=None, encode_ms=1.0, decode_ms=2.0,
                               segments=[{"start": 0.5, "end": 0.9, "text": " hi", "tokens": [1], "words": words}],
                               words=words, tokens=tokens)


def transcriber(env):
    model = RecordingModel()
    return model, SegmentTranscriber(model, load_config(env=env).asr, "w1", "en")


def seg(kind, offset=32000, pcm=b"\0\0" * 1600, options=None, wordless=False, utt=1):
    return Segment(utt=utt, kind=kind, offset=offset, pcm=pcm, stream="s", options=options or {}, wordless=wordless)


def test_finals_get_beam_search_and_partials_stay_greedy():
    model, t = transcriber({"VOXBUS_ASR__BEAM_SIZE": "5", "VOXBUS_ASR__WORD_TIMESTAMPS": "true"})
    t.transcribe(seg("partial"), 0)
    t.transcribe(seg("final"), 0)
    partial, final = model.calls
    assert partial["temperature"] == [0.0] and "beam_size" not in partial
    assert partial["second_pass"] is False and partial["draft_window"] is True
    assert partial["sample_len"] == 10 + int(6 * 0.1)  # tokens bounded by the audio's length
    assert "second_pass" not in final and "draft_window" not in final  # finals: the full rule and both passes
    assert "sample_len" not in final
    assert partial["draft_encoder"] is True and "draft_encoder" not in final  # finals: the exact encoder
    t.transcribe(seg("partial", wordless=True, utt=2), 0)
    assert model.calls[-1]["draft_window"] is False  # the first words come sooner on the full window
    t.transcribe(seg("partial", wordless=True, utt=2), 0)
    assert model.calls[-1]["draft_window"] is True  # ... until this worker has decoded some of them
    model.encoder_window = EncoderWindow(15.0, 1.0, draft_floor_s=8.0, first_words_draft=True)
    t.transcribe(seg("partial", wordless=True, utt=3), 0)
    assert model.calls[-1]["draft_window"] is True  # or the model says they come as soon on the draft
    assert final["beam_size"] == 5 and final["length_penalty"] is None and final["word_timestamps"] is True


def test_draft_encoder_off_keeps_partials_on_the_exact_encoder():
    model, t = transcriber({"VOXBUS_ASR__DRAFT_ENCODER": "false"})
    t.transcribe(seg("partial"), 0)
    t.transcribe(seg("partial", wordless=True, utt=2), 0)
    assert [call["draft_encoder"] for call in model.calls] == [False, False]


def test_a_job_segments_own_options_win():
    model, t = transcriber({})
    t.transcribe(seg("final", options={"temperature": [0.3]}), 0)
    assert model.calls[0]["temperature"] == [0.3]


def test_times_move_onto_the_stream_timeline():
    _, t = transcriber({})
    msg = t.transcribe(seg("final", offset=32000), 0)
    assert msg.start == 2.0 and msg.segments[0]["start"] == 2.5
    assert msg.words[0]["start"] == 2.5 and msg.segments[0]["words"][0]["end"] == 2.9
    assert "tokens" not in msg.segments[0]


def test_odd_pcm_is_a_permanent_error():
    _, t = transcriber({})
    msg = t.transcribe(seg("final", pcm=b"\0\0\0"), 0)
    assert isinstance(msg, Error) and msg.permanent and "odd number of bytes" in msg.message


def test_vads_judgement_reaches_the_engine_instead_of_a_second_webrtcvad():
    from asr.transcriber import voiced_frames
    flags = bytes([0, 1, 1, 0, 1])
    whole = Segment(utt=1, kind="partial", offset=0, pcm=bytes(2 * 480 * 5), stream="s", voiced=flags,
                    voiced_frame_ms=30, utt_offset=0)
    judged = voiced_frames(whole)
    assert judged.frame_samples == 480 and judged.voiced_ms(0, 480 * 5) == 90
    assert judged.voiced_ms(480, 480 * 3) == 60 and judged.after(480 * 3).voiced_ms(0, 480 * 2) == 30
    assert voiced_frames(Segment(utt=1, kind="final", offset=0, pcm=b"", job="j")) is None


def test_a_short_partial_gets_no_previous_text_as_prompt():
    """On under a second of audio Whisper tends to repeat its prompt as if it were heard."""
    cfg = load_config(env={}).asr
    transcriber = SegmentTranscriber(RecordingModel(), cfg, "w", "en")
    transcriber._remember("s", "The last thing said.")
    short = Segment(utt=2, kind="partial", offset=0, pcm=bytes(2 * 8000), stream="s")
    longer = Segment(utt=2, kind="partial", offset=0, pcm=bytes(2 * 32000), stream="s")
    final = Segment(utt=2, kind="final", offset=0, pcm=bytes(2 * 8000), stream="s")
    assert transcriber._prompt(short) is None
    assert transcriber._prompt(longer) == transcriber._prompt(final) == "The last thing said."


def test_a_partial_starts_from_the_words_its_last_two_partials_agree_on():
    model, t = transcriber({})
    for seconds in (1, 2, 3):
        t.transcribe(seg("partial", pcm=bytes(2 * 16000 * seconds)), 0)
    t.transcribe(seg("final", pcm=bytes(2 * 16000 * 4)), 0)
    first, second, third, final = (call["prefix"] for call in model.calls)
    assert first is None and second is None  # two decodes are needed to agree
    assert third == (10, 11)  # agreed on 10 11 20, cut back to where the newer decode's word starts
    assert final is None  # finals always decode afresh
    t.published(t.transcribe(seg("final"), 0))
    assert not t.prefixes.decodes  # the utterance ended: nothing kept for it


def test_partial_prefix_can_be_turned_off():
    model, t = transcriber({"VOXBUS_ASR__PARTIAL_PREFIX": "false"})
    for seconds in (1, 2, 3):
        t.transcribe(seg("partial", pcm=bytes(2 * 16000 * seconds)), 0)
    assert [call["prefix"] for call in model.calls] == [None, None, None] and t.prefixes is None
