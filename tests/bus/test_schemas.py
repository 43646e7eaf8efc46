"""Every message survives encode → decode unchanged; no input makes the decoder raise anything but SchemaError."""
from __future__ import annotations

import dataclasses
import random
import re
from collections import Counter

import msgpack
import pytest

from bus import schemas

SEED = 20240611
FUZZ_CASES = 20000

PCM = bytes(range(256)) * 2 + b"\x00\x80" * 64

EXAMPLES = [
    schemas.Open(stream="mic1", language="de", task="translate", partials=False, prompt="Hallo",
                 source="alsa:hw:1", end_silence_ms=500),
    schemas.Open(stream="a.b:c-d_e"),
    schemas.Flush(stream="mic1"),
    schemas.Close(stream="mic1"),
    schemas.Audio(stream="mic1", seq=7, offset=7 * 320, pcm=PCM, ts=1700000000.25),
    schemas.Audio(stream="mic1", seq=0, offset=0, pcm=b""),
    schemas.SpeechStart(stream="mic1", utt=3, offset=48000, ts=1.5),
    schemas.SpeechEnd(stream="mic1", utt=3, offset=96000),
    schemas.Segment(utt=3, kind="partial", offset=48000, pcm=PCM, stream="mic1", language="en",
                    prompt="previous text", ts_end_of_speech=2.0),
    schemas.Segment(utt=0, kind="final", offset=0, pcm=PCM, job="job-1", index=2, count=5,
                    options={"beam_size": 5, "temperature": [0.0, 0.2]}),
    schemas.Job(job="job-1", pcm=PCM, language="auto", task="transcribe", options={"word_timestamps": True},
                ts=3.0),
    schemas.Partial(utt=3, text="hello wor", start=3.0, end=4.5, stream="mic1",
                       segments=[{"start": 3.0, "end": 4.5, "text": "hello wor", "avg_logprob": -0.2,
                                  "no_speech_prob": 0.01}], language="en", language_prob=0.98,
                       worker="pi-1234", encode_ms=120.5, decode_ms=80.0, queue_ms=3.0),
    schemas.Final(utt=3, text="hello world", start=3.0, end=5.0, stream="mic1",
                       words=[{"word": "hello", "start": 3.0, "end": 3.4}], is_speech_final=True,
                       ts=10.0, ts_end_of_speech=9.5),
    schemas.Final(utt=0, text="first piece", start=0.0, end=29.5, job="job-1", index=0,
                       count=2),
    schemas.JobSegments(job="job-1", count=2, duration=42.5),
    schemas.Error(code="model_missing", message="no model at /x", stream="mic1", permanent=True, stage="asr"),
    schemas.Error(code="busy", message="try later", job="job-1", utt=1, index=0, permanent=False),
    schemas.Alert(rule="fire", kind="keyword", stream="mic1", wall=1700000000.5, text="Fire in the hall",
                  terms=["fire"], worker="w1", seq=42),
    schemas.Alert(rule="quiet", kind="silence", stream="cam2", wall=1700000100.0),
    schemas.DiarizeJob(job="job-1.speakers", pcm=PCM, num_speakers=2, ts=3.0),
    schemas.Speakers(job="job-1.speakers", turns=[{"start": 0.5, "end": 2.0, "speaker": "SPEAKER_1"}], count=1,
                     compute_ms=12.5, worker="pi-1"),
    schemas.Speakers(stream="mic1", utt=4, turns=[{"start": 3.0, "end": 5.0, "speaker": "SPEAKER_2"}], count=2),
    schemas.VoiceJob(job="voice-1", op="enroll", name="ann", pcm=PCM, ts=3.0),
    schemas.Voices(job="voice-1", voices=[{"name": "ann", "speech_s": 6.2, "enrolled_at": 3.0}]),
    schemas.Flushed(stream="mic1", utt=3),
    schemas.Flushed(stream="mic1"),
    schemas.Ack(stream="mic1", offset=48000, utt=3, vad="pi-1234"),
    schemas.Open(stream="mic1", replays=True, resume_utt=4),
    schemas.Heartbeat(stage="vad", pid=1234, host="pi", uptime_s=12.5, ok=True, instance="pi-1234",
                      counters={"streams": 2, "gaps": {"mic1": 0}}, ts=5.0),
    schemas.Heartbeat(stage="capture", pid=1, host="pi", uptime_s=0.0, ok=False, status="not implemented"),
]
PUSH_ONLY = (schemas.Segment, schemas.Job, schemas.DiarizeJob, schemas.VoiceJob)


def test_every_topic_family_is_known_and_an_alert_goes_on_alert():
    assert {m.topic().split(b"/")[0].decode() for m in EXAMPLES if not isinstance(m, PUSH_ONLY)} \
        == set(schemas.TOPIC_FAMILIES)
    silence = next(m for m in EXAMPLES if isinstance(m, schemas.Alert) and m.kind == "silence")
    assert silence.topic() == b"alert/cam2/" and schemas.prefix("alert") == b"alert/"
    with pytest.raises(schemas.SchemaError, match="topic family"):
        schemas.prefix("alerts")
    with pytest.raises(schemas.SchemaError, match="alert.kind"):
        schemas.decode(schemas.encode(dataclasses.replace(silence, kind="loud")))


def test_examples_cover_every_message_type():
    assert {type(m) for m in EXAMPLES} == set(schemas.MESSAGE_TYPES.values())
    kinds = {m.kind for m in EXAMPLES if isinstance(m, schemas.Transcript)}
    assert kinds == {"partial", "final"}


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: f"{m.TYPE}")
def test_encode_decode_round_trip(msg):
    back = schemas.decode(schemas.encode(msg))
    assert back == msg
    assert type(back) is type(msg)


@pytest.mark.parametrize("msg", [m for m in EXAMPLES if not isinstance(m, PUSH_ONLY)], ids=lambda m: m.TYPE)
def test_pack_unpack_round_trip(msg):
    frames = schemas.pack(msg)
    assert len(frames) == 2 and frames[0].endswith(b"/")
    assert schemas.unpack(frames) == msg


@pytest.mark.parametrize("msg", [m for m in EXAMPLES if isinstance(m, PUSH_ONLY)], ids=lambda m: m.TYPE)
def test_push_only_messages_have_no_topic(msg):
    with pytest.raises(schemas.SchemaError, match="not a PUB message"):
        schemas.pack(msg)


def test_payload_carries_version_and_type():
    body = msgpack.unpackb(schemas.encode(EXAMPLES[-1]))
    assert body["v"] == schemas.VERSION and body["type"] == "heartbeat"
    transcript = msgpack.unpackb(schemas.encode(EXAMPLES[12]))
    assert transcript["type"] == "final" and "kind" not in transcript


def test_topic_suffix_keeps_mic1_apart_from_mic10():
    assert schemas.Audio(stream="mic1", seq=0, offset=0, pcm=b"").topic() == b"audio/mic1/"
    assert not b"audio/mic10/".startswith(b"audio/mic1/")


@pytest.mark.parametrize("body, words", [
    ({"v": 2, "type": "flush", "stream": "a"}, "version"),
    ({"type": "flush", "stream": "a"}, "version"),
    ({"v": 1, "type": "nope", "stream": "a"}, "unknown message type"),
    ({"v": 1, "type": "audio", "stream": "a", "seq": 1, "offset": 0}, "missing field 'pcm'"),
    ({"v": 1, "type": "audio", "stream": "a", "seq": -1, "offset": 0, "pcm": b""}, "negative"),
    ({"v": 1, "type": "audio", "stream": "a", "seq": True, "offset": 0, "pcm": b""}, "audio.seq"),
    ({"v": 1, "type": "flush", "stream": "a/b"}, "bad stream id"),
    ({"v": 1, "type": "open", "stream": "a", "task": "sing"}, "one of transcribe, translate"),
    ([1, 2, 3], "expected a map"),
])
def test_bad_payloads_name_the_problem(body, words):
    with pytest.raises(schemas.SchemaError, match=words):
        schemas.decode(msgpack.packb(body, use_bin_type=True))


def test_unpack_rejects_a_topic_that_does_not_match():
    frames = schemas.pack(schemas.Flush(stream="mic1"))
    with pytest.raises(schemas.SchemaError, match="does not match"):
        schemas.unpack([b"ctl/mic2/", frames[1]])
    with pytest.raises(schemas.SchemaError, match="2 frames"):
        schemas.unpack(frames[:1])


# ---- fuzzing (hypothesis is not in the venv: a seeded generator instead) ------

FIELD_NAMES = sorted({f.name for cls in schemas.MESSAGE_TYPES.values() for f in dataclasses.fields(cls)})
TYPE_NAMES = sorted(schemas.MESSAGE_TYPES) + ["", "Audio", "heartbeat ", "kind"]


def random_value(rng: random.Random, depth: int = 0):
    pick = rng.randrange(12 if depth < 2 else 9)
    return [lambda: rng.randint(-2**63, 2**64 - 1), lambda: rng.randint(-3, 3), lambda: rng.random() * 1e6,
            lambda: rng.choice(["", "mic1", "a/b", "x" * 70, "é", "partial", "final", "translate"]),
            lambda: rng.randbytes(rng.randrange(8)), lambda: None, lambda: rng.choice([True, False]),
            lambda: float("nan"), lambda: msgpack.ExtType(rng.randrange(128), b"x"),
            lambda: [random_value(rng, depth + 1) for _ in range(rng.randrange(3))],
            lambda: {rng.choice(FIELD_NAMES): random_value(rng, depth + 1) for _ in range(rng.randrange(3))},
            lambda: {rng.randrange(5): 1}][pick]()


def random_body(rng: random.Random) -> dict:
    body = {name: random_value(rng) for name in rng.sample(FIELD_NAMES, rng.randrange(len(FIELD_NAMES)))}
    if rng.random() < 0.9:
        body["v"] = 1 if rng.random() < 0.9 else random_value(rng)
    if rng.random() < 0.95:
        body["type"] = rng.choice(TYPE_NAMES)
    return body


def random_payload(rng: random.Random) -> bytes:
    mode = rng.randrange(4)
    if mode == 0:
        return rng.randbytes(rng.randrange(64))
    if mode == 1:   # a valid message, mutated at one byte
        data = bytearray(schemas.encode(rng.choice(EXAMPLES)))
        data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if mode == 2:   # a valid message cut short
        data = schemas.encode(rng.choice(EXAMPLES))
        return data[:rng.randrange(len(data))]
    try:
        return msgpack.packb(random_body(rng), use_bin_type=True)
    except (ValueError, TypeError, OverflowError):   # e.g. an int map key the packer refuses
        return b"\x80"


def outcome(call, *args) -> str:
    """"accepted", or the SchemaError's message without the values it quotes; any other
    exception fails the test."""
    try:
        call(*args)
    except schemas.SchemaError as exc:
        return re.sub(r"= .*?:", "= …:", str(exc))[:60]
    return "accepted"


def reached(outcomes: list[str], *needles: str) -> list[str]:
    """The needles no outcome mentions: error paths the generator never reached."""
    return [needle for needle in needles if not any(needle in o for o in outcomes)]


def test_fuzz_decode_raises_only_schema_error():
    rng = random.Random(SEED)
    outcomes = [outcome(schemas.decode, random_payload(rng)) for _ in range(FUZZ_CASES)]
    assert outcomes.count("accepted") < FUZZ_CASES
    assert not reached(outcomes, "not msgpack", "unsupported schema version", "unknown message type",
                       "missing field", "payload is a"), Counter(outcomes).most_common(20)


def test_fuzz_unpack_raises_only_schema_error():
    rng = random.Random(SEED + 1)
    topics = [b"", b"ctl/mic1/", b"audio/mic1/", b"health/vad/", b"text/", b"\xff\xfe"]
    outcomes = []
    for _ in range(FUZZ_CASES // 4):
        frames = [rng.choice(topics), random_payload(rng)][:rng.choice([0, 1, 2, 2, 2, 3])]
        if len(frames) == 3:
            frames.append(b"")
        outcomes.append(outcome(schemas.unpack, frames))
    assert not reached(outcomes, "expected 2 frames", "not msgpack", "unknown message type"), \
        Counter(outcomes).most_common(20)


def test_fuzz_random_maps_are_decoded_or_refused():
    rng = random.Random(SEED + 2)
    outcomes = []
    for _ in range(FUZZ_CASES):
        body = random_body(rng)
        try:
            data = msgpack.packb(body, use_bin_type=True)
        except (ValueError, TypeError, OverflowError):
            continue
        outcomes.append(outcome(schemas.decode, data))
    # Field-level checks are reached, not only the version and type gates.
    assert len(set(outcomes)) >= 20, Counter(outcomes).most_common(20)
    assert not reached(outcomes, "missing field", "unknown message type", "unsupported schema version"), \
        Counter(outcomes).most_common(20)


@pytest.mark.parametrize("msg, problem", [
    (schemas.Final(utt=1, text="x", start=0, end=1, stream="s", segments=[{"start": 0}]),
     "segments[0].end"),
    (schemas.Final(utt=1, text="x", start=0, end=1, stream="s",
                        segments=[{"start": 0, "end": 1, "text": 5}]), "segments[0].text"),
    (schemas.Final(utt=1, text="x", start=0, end=1, stream="s", words=["w"]), "words[0]"),
    (schemas.Final(utt=1, text="x", start=0, end=1, stream="s", job="j"), "exactly one"),
    (schemas.Error(code="c", message="m"), "exactly one"),
    (schemas.Open(stream="s", end_silence_ms=-5), "end_silence_ms"),
])
def test_cross_field_and_nested_rules(msg, problem):
    with pytest.raises(schemas.SchemaError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        schemas.decode(schemas.encode(msg))


def test_speaker_messages_refuse_bad_hints_and_turns():
    with pytest.raises(schemas.SchemaError, match="diarize_job.num_speakers = 0"):
        schemas.decode(schemas.encode(schemas.DiarizeJob(job="j", pcm=b"", num_speakers=0)))
    with pytest.raises(schemas.SchemaError, match="exactly one of stream and job"):
        schemas.decode(schemas.encode(schemas.Speakers(job="j", stream="s")))
    assert schemas.Speakers(stream="mic1").topic() == b"speaker/mic1/"
    bad = schemas.Speakers(job="j", turns=[{"start": 0.0, "end": 1.0}])
    with pytest.raises(schemas.SchemaError, match=r"speakers.turns\[0\].speaker: expected a string"):
        schemas.decode(schemas.encode(bad))
