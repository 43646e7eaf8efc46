"""Which served model a request goes to (issue 12): named, the default, or (for a language the
English-only default cannot do) a multilingual one; the choice travels on the stream's `open`."""
from __future__ import annotations

import pytest

from bus import schemas
from gateway import models
from gateway.errors import ApiError
from gateway.ws_protocol import Session, SessionConfig
from config import load_config

TINY = models.Capabilities("tiny.en-int8", ("en",), False, True, True, 2)
BASE = models.Capabilities("base-int8", ("en", "de", "fr"), True, True, True, 1)


def catalogue(*served, upload="") -> models.Catalogue:
    return models.Catalogue({m.name: m for m in served}, TINY.name, upload)


def test_the_default_unless_it_cannot_do_the_language_and_another_can():
    both = catalogue(TINY, BASE)
    assert both.pick(None).name == TINY.name
    assert both.pick("whisper-1", language="de").name == BASE.name
    assert both.pick("", task="translate").name == BASE.name
    assert both.pick(TINY.name, language="de").name == TINY.name  # named: refused later, not rerouted
    assert catalogue(TINY).pick(None, language="de").name == TINY.name  # nothing can: the default (then a 400)
    unloaded = models.Capabilities(BASE.name, BASE.languages, True, True, loaded=False)
    assert catalogue(TINY, unloaded).pick(None, language="de").name == TINY.name


def test_uploads_default_to_the_upload_model():
    both = catalogue(TINY, BASE, upload=BASE.name)
    assert both.pick(None, upload=True).name == BASE.name and both.pick(None).name == TINY.name
    with pytest.raises(ApiError) as caught:
        both.pick("large-v3")
    assert "tiny.en-int8, base-int8" in str(caught.value.message)


def test_a_stream_opens_with_the_model_its_check_chose():
    check = models.session_check(catalogue(TINY, BASE))
    session = Session("ws-1", SessionConfig(language="de", encoding="s16"), load_config(env={}).gateway, 320, check)
    opened = [m for m in session.audio(b"\0\0" * 320) if isinstance(m, schemas.Open)]
    assert opened[0].model == BASE.name and opened[0].language == "de"
