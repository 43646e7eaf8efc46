"""Several models in config (issue 12): every default and per-stream model is a served one."""
from __future__ import annotations

import pytest

from config import ConfigError, load_config

MODELS = "['tiny.en-int8', 'base-int8']"


def test_several_models_and_their_defaults():
    cfg = load_config(env={"VOXBUS_ASR__MODELS": MODELS, "VOXBUS_ASR__UPLOAD_MODEL": "base-int8"})
    assert cfg.asr.models == ("tiny.en-int8", "base-int8") and cfg.asr.upload_model == "base-int8"


@pytest.mark.parametrize("env, named", [
    ({"VOXBUS_ASR__UPLOAD_MODEL": "large"}, "asr.upload_model = 'large': expected one of asr.models"),
    ({"VOXBUS_ASR__MODEL": "large"}, "asr.model = 'large': expected one of asr.models"),
    ({"VOXBUS_ASR__MODELS": "['a', 'a']", "VOXBUS_ASR__MODEL": "a"}, "expected each model once"),
    ({"VOXBUS_CAPTURE__SOURCES": "[{stream = 'mic', model = 'large'}]"},
     "capture.sources[mic].model = 'large': expected one of asr.models"),
    ({"VOXBUS_VAD__REMOTE_SEGMENTS": "udp://x"}, "vad.remote_segments = 'udp://x': expected an endpoint"),
])
def test_a_model_not_served_is_named(env, named):
    with pytest.raises(ConfigError) as caught:
        load_config(env={"VOXBUS_ASR__MODELS": MODELS, **env})
    assert any(named in line for line in caught.value.problems), caught.value.problems


def test_a_source_opens_its_stream_with_its_model():
    import threading

    from capture.backoff import Backoff
    from capture.worker import SourceWorker

    cfg = load_config(env={"VOXBUS_ASR__MODELS": MODELS,
                           "VOXBUS_CAPTURE__SOURCES": "[{stream = 'hall', kind = 'file', model = 'base-int8'}]"})
    worker = SourceWorker(cfg.capture.sources[0], 20, lambda c: None, lambda m: None, threading.Event(),
                          backoff=Backoff((0.01,)))
    assert worker._open_message().model == "base-int8"
