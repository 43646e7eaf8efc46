import json
import shutil

import numpy as np
import pytest

from asr.whisper.audio import load_audio
from asr.whisper.engine import ModelFormatError, ModelNotFoundError, WhisperModel
from tests.asr.wer import wer

# jfk plus three LibriSpeech test-clean utterances: 102 reference words.
SHORT_CLIPS = ["jfk", "ls-1089-134686-0000", "ls-1089-134691-0001", "ls-2412-153948-0001"]


# --- loading ---------------------------------------------------------------------------


def test_missing_model_names_the_build_command(tmp_path):
    with pytest.raises(ModelNotFoundError, match="voxbus model build tiny --out DIR"):
        WhisperModel(tmp_path / "nowhere")


@pytest.mark.slow
def test_missing_file_and_bad_manifest(tiny_model_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "decoder.onnx").unlink()
    with pytest.raises(ModelNotFoundError, match="no decoder.onnx"):
        WhisperModel(broken)
    shutil.copy(tiny_model_dir / "decoder.onnx", broken / "decoder.onnx")
    manifest = json.loads((broken / "manifest.json").read_text())
    del manifest["dims"]["n_vocab"]
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match="n_vocab"):
        WhisperModel(broken)
    (broken / "manifest.json").write_text("{not json")
    with pytest.raises(ModelFormatError, match="not valid JSON"):
        WhisperModel(broken)


@pytest.mark.slow
def test_corrupt_onnx_file_is_a_model_error(tiny_model_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "encoder.onnx").write_bytes(b"garbage")
    with pytest.raises(ModelFormatError, match="encoder.onnx"):
        WhisperModel(broken)


@pytest.mark.slow
def test_checksums_verified_on_request(tiny_model_dir, tmp_path):
    WhisperModel(tiny_model_dir, threads=1, check_files=True)  # the real build passes
    copy = tmp_path / "model"
    shutil.copytree(tiny_model_dir, copy)
    tokenizer = copy / "tokenizer.json"
    tokenizer.write_bytes(tokenizer.read_bytes().replace(b"{", b"{ ", 1))  # still valid JSON, other bytes
    WhisperModel(copy, threads=1)  # not checked unless asked: loading stays fast
    with pytest.raises(ModelFormatError, match="tokenizer.json: sha256 does not match manifest.json"):
        WhisperModel(copy, threads=1, check_files=True)


# --- transcription ---------------------------------------------------------------------


@pytest.mark.slow
def test_short_clips_are_accurate(tiny_model, eval_clips):
    references, hypotheses = [], []
    for clip_id in SHORT_CLIPS:
        clip = eval_clips[clip_id]
        result = tiny_model.transcribe(load_audio(clip["file"]))
        assert result.language == "en" and result.language_prob is None
        assert result.encode_ms > 0 and result.decode_ms > 0
        assert result.segments and all(s.start < s.end for s in result.segments)
        assert result.duration == pytest.approx(float(clip["duration_s"]), abs=0.01)
        references.append(clip["transcript"])
        hypotheses.append(result.text)
    assert wer(references, hypotheses) <= 0.10, hypotheses


@pytest.mark.slow
def test_segment_fast_path_agrees(tiny_model, eval_clips):
    audio = load_audio(eval_clips["jfk"]["file"])
    assert tiny_model.transcribe_segment(audio).text == tiny_model.transcribe(audio).text


@pytest.mark.slow
def test_long_audio_is_windowed(tiny_model, eval_clips):
    clip = eval_clips["osr-us-0034"]  # 35.5 s: needs a second window
    result = tiny_model.transcribe(load_audio(clip["file"]))
    assert wer([clip["transcript"]], [result.text]) <= 0.10, result.text
    starts = [s.start for s in result.segments]
    assert starts == sorted(starts) and result.segments[-1].end > 30.0


@pytest.mark.slow
def test_prompt_and_options(tiny_model, eval_clips):
    audio = load_audio(eval_clips["ls-1089-134691-0000"]["file"])
    result = tiny_model.transcribe_segment(audio, prompt="He waited.", without_timestamps=True)
    assert "wait" in result.text.lower()
    with pytest.raises(ValueError, match="unknown transcription option"):
        tiny_model.transcribe(audio, beam_width=5)
    with pytest.raises(ValueError, match="English-only"):
        tiny_model.transcribe(audio, language="de")
    with pytest.raises(ValueError, match="beam_size"):
        tiny_model.transcribe(audio, beam_size=0)


@pytest.mark.slow
@pytest.mark.parametrize(
    "audio, message",
    [
        (np.zeros(0, np.float32), "empty"),
        (np.array([0.0, np.nan], np.float32), "NaN"),
        (np.array([0.0, np.inf], np.float32), "infinite"),
        (np.zeros(16000, np.int16), "float"),
        (np.zeros((2, 16000), np.float32), "1-D"),
        ([0.0] * 100, "numpy array"),
    ],
)
def test_bad_audio_is_a_clear_value_error(tiny_model, audio, message):
    with pytest.raises(ValueError, match=message):
        tiny_model.transcribe(audio)
    with pytest.raises(ValueError, match=message):
        tiny_model.transcribe_segment(audio)


@pytest.mark.slow
def test_segment_longer_than_a_window_is_refused(tiny_model):
    with pytest.raises(ValueError, match="at most 30 s"):
        tiny_model.transcribe_segment(np.zeros(16000 * 31, np.float32))


@pytest.mark.slow
def test_a_callers_voice_judgement_replaces_webrtcvad(tiny_model, eval_clips):
    from asr.whisper.speech_guard import VoicedFrames
    audio = load_audio(eval_clips[SHORT_CLIPS[0]]["file"])
    frames = -(-audio.shape[0] // 480)
    heard = tiny_model.transcribe_segment(audio, voiced=VoicedFrames(np.ones(frames, bool), 480))
    assert heard.text == tiny_model.transcribe_segment(audio).text
    silent = tiny_model.transcribe_segment(audio, voiced=VoicedFrames(np.zeros(frames, bool), 480))
    assert silent.text == "" and silent.encode_ms == 0  # judged silent: never encoded


def test_a_prefix_starts_the_decode_and_only_the_rest_is_decoded(tiny_model, eval_clips):
    """A live partial resumes from the tokens its last two partials agreed on: given tokens the
    model would say anyway, the decode keeps them, gives the same text, and steps only past them."""
    audio = load_audio(eval_clips["ls-1089-134691-0001"]["file"])
    options = dict(language="en", temperature=[0.0], second_pass=False, draft_window=True)
    steps = []
    make_inference = tiny_model.sessions.decoder_inference

    def counting(encoded):
        inference = make_inference(encoded)
        logits = inference.logits
        inference.logits = lambda tokens: steps.append(tokens.shape[1]) or logits(tokens)
        return inference

    tiny_model.sessions.decoder_inference = counting
    try:
        fresh = tiny_model.transcribe_segment(audio, **options)
        fresh_steps = len(steps)
        cut = next(i for i in range(len(fresh.tokens) // 2, 0, -1) if tiny_model.tokenizer.starts_word(fresh.tokens[i]))
        prefix = fresh.tokens[:cut]
        steps.clear()
        resumed = tiny_model.transcribe_segment(audio, prefix=prefix, **options)
    finally:
        tiny_model.sessions.decoder_inference = make_inference
    assert resumed.tokens[:cut] == prefix and resumed.text == fresh.text
    assert len(steps) == fresh_steps - cut  # the prefix went through the decoder in its first run
    with pytest.raises(ValueError, match="prefix must be a tuple of token ids"):
        tiny_model.transcribe_segment(audio, prefix=(1, -2), **options)


def test_a_draft_decode_runs_the_draft_encoder_and_hears_the_same_words(tiny_model, tiny_model_dir, eval_clips):
    """Live partials' encoder (encoder_draft.onnx): only a draft_encoder decode runs it, and on these
    clips (cut as partials see them) its greedy text is near the exact encoder's."""
    assert tiny_model.sessions.draft_encoder is tiny_model.sessions.encoder  # not loaded unless asked for
    model = WhisperModel(tiny_model_dir, threads=2, draft_encoder=True)
    sessions = model.sessions
    assert sessions.draft_encoder is not sessions.encoder
    runs = []
    exact_run, draft_run = sessions.encoder.run, sessions.draft_encoder.run
    sessions.encoder.run = lambda *a: runs.append("exact") or exact_run(*a)
    sessions.draft_encoder.run = lambda *a: runs.append("draft") or draft_run(*a)
    options = dict(language="en", temperature=[0.0], second_pass=False, draft_window=True)
    for clip_id in SHORT_CLIPS[1:]:
        audio = load_audio(eval_clips[clip_id]["file"])[: 16000 * 4]
        runs.clear()
        draft = model.transcribe_segment(audio, draft_encoder=True, **options)
        assert runs == ["draft"], clip_id
        runs.clear()
        exact = model.transcribe_segment(audio, **options)
        assert runs == ["exact"], clip_id
        assert wer([exact.text], [draft.text]) <= 0.15, (clip_id, exact.text, draft.text)


def test_without_a_draft_encoder_a_draft_decode_uses_the_exact_one(tiny_model_dir, tmp_path, eval_clips):
    """A model built before builder 6 (or at fp32) has no encoder_draft.onnx: nothing breaks."""
    for item in tiny_model_dir.iterdir():
        if item.name != "encoder_draft.onnx":
            (tmp_path / item.name).symlink_to(item)
    model = WhisperModel(tmp_path, threads=1, draft_encoder=True)
    assert model.sessions.draft_encoder is model.sessions.encoder
    audio = load_audio(eval_clips["jfk"]["file"])
    options = dict(language="en", temperature=[0.0])
    assert model.transcribe_segment(audio, draft_encoder=True, **options).text == \
        model.transcribe_segment(audio, **options).text
    with pytest.raises(ValueError, match="draft_encoder must be true or false"):
        model.transcribe_segment(audio, draft_encoder="yes")
