"""What asr does when vad's broker resets it (asr/main.py `AsrLoop.on_reset`), without sockets
or a model: `expired` means the broker gave this worker's segments to others, so none of them
may be published here; `unknown` (a restarted vad) only asks for `ready` again."""
from __future__ import annotations

from asr.main import AsrLoop
from bus import schemas
from bus.stage import StageRuntime
from bus.worker_protocol import Reset
from config import load_config


class FakeLink:
    def __init__(self, tickets):
        self.outstanding = set(tickets)
        self.sent = []

    def done(self, segment):
        if segment.ticket in self.outstanding:
            self.outstanding.discard(segment.ticket)
            self.sent.append(("done", segment.ticket))

    def forget(self, tickets):
        self.outstanding.difference_update(tickets)

    def ready(self):
        self.sent.append(("ready", len(self.outstanding)))


class FakePub:
    def __init__(self):
        self.frames = []

    def send_multipart(self, frames, copy=True):
        self.frames.append(frames)


def final(stream: str, utt: int, ticket: int) -> schemas.Segment:
    return schemas.Segment(utt=utt, kind="final", offset=0, pcm=b"\0\0" * 160, stream=stream, ticket=ticket)


def answer_to(segment: schemas.Segment) -> schemas.Final:
    return schemas.Final(utt=segment.utt, text="words", start=0.0, end=0.01, stream=segment.stream)


def make_loop(tmp_path, tickets) -> AsrLoop:
    cfg = load_config(env={"VOXBUS_RUN_DIR": str(tmp_path)}, check_cores=False)
    loop = AsrLoop(StageRuntime("asr", cfg, ctx=None))
    loop.link = FakeLink(tickets)
    return loop


def test_expired_nothing_held_is_published_and_decodes_under_way_still_give_their_slot_back(tmp_path):
    loop = make_loop(tmp_path, {1, 2, 3})
    queued, decoding, held = final("a", 1, ticket=1), final("b", 2, ticket=2), final("c", 3, ticket=3)
    loop.enqueue(queued)
    loop.held_finals["c"] = held  # waiting on its speculation
    loop.on_reset(Reset("expired"))
    assert len(loop.queue) == 0 and not loop.held_finals
    assert loop.link.outstanding == {2} and loop.link.sent == [("ready", 1)]  # the decode's slot is still taken
    pub = FakePub()
    loop.answer(pub, decoding, answer_to(decoding))  # the decode under way ends
    assert pub.frames == [] and loop.counters["results_void"] == 1
    assert loop.link.sent[-1] == ("done", 2)  # its slot goes back; nothing was published


def test_unknown_only_asks_for_ready_and_what_is_held_is_still_published(tmp_path):
    loop = make_loop(tmp_path, {7})
    segment = final("a", 1, ticket=7)
    loop.on_reset(Reset("unknown"))
    pub = FakePub()
    loop.answer(pub, segment, answer_to(segment))
    assert len(pub.frames) == 1 and schemas.unpack(pub.frames[0]).text == "words"
    assert loop.link.sent == [("ready", 1), ("done", 7)]
