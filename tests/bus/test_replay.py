"""StreamReplay and VadWatch: what a live source resends to a vad that restarted."""
from bus import schemas
from bus.replay import StreamReplay, VadWatch

FRAME = 320  # samples of one 20 ms frame


def frame(seq: int) -> schemas.Audio:
    return schemas.Audio(stream="s", seq=seq, offset=seq * FRAME, pcm=bytes(2 * FRAME))


def heartbeat(instance: str, stage: str = "vad") -> schemas.Heartbeat:
    return schemas.Heartbeat(stage=stage, pid=1, host="h", uptime_s=0.0, ok=True, instance=instance)


def test_vad_watch_sees_each_new_instance_once():
    watch = VadWatch("h-1")
    assert not watch.restarted(heartbeat("h-1"))
    assert not watch.restarted(heartbeat("h-9", stage="asr"))
    assert watch.restarted(heartbeat("h-2")) and not watch.restarted(heartbeat("h-2"))
    assert watch.restarts == 1
    assert VadWatch().restarted(heartbeat("h-1"))  # the first vad heard counts: it may have missed the open


def test_ack_trims_and_resend_starts_at_the_acked_frame():
    replay = StreamReplay(capacity_samples=100 * FRAME)
    assert replay.resend() == []  # nothing opened: nothing to resend
    assert replay.open(schemas.Open(stream="s", language="de", partials=False), "h-1").vad == "h-1"
    for seq in range(10):
        replay.sent(frame(seq))
    replay.acked(schemas.Ack(stream="s", offset=4 * FRAME + 10, utt=3))
    replay.acked(schemas.Ack(stream="s", offset=2 * FRAME, utt=2))  # an older ack overtaken: ignored
    opened, *frames = replay.resend()
    assert (opened.language, opened.partials, opened.replays, opened.resume_utt) == ("de", False, True, 3)
    assert [f.seq for f in frames] == [4, 5, 6, 7, 8, 9]  # frame 4 holds samples past the ack
    assert replay.counters()["replay_samples"] == 6 * FRAME


def test_the_buffer_is_bounded_and_counts_what_it_dropped():
    replay = StreamReplay(capacity_samples=5 * FRAME)
    replay.open(schemas.Open(stream="s"), None)
    for seq in range(8):
        replay.sent(frame(seq))
    assert [f.seq for f in replay.resend()[1:]] == [3, 4, 5, 6, 7]
    assert replay.overflow_samples == 3 * FRAME and replay.resends == 1


def test_an_unanswered_flush_is_resent_once_after_the_audio():
    replay = StreamReplay(capacity_samples=10 * FRAME)
    replay.open(schemas.Open(stream="s"), None)
    replay.sent(frame(0))
    replay.flushed()
    replay.flushed()
    *_, last = replay.resend()
    assert isinstance(last, schemas.Flush)
    assert replay.answered(schemas.Flushed(stream="s"))  # one flush stands for all after a restart
    assert not isinstance(replay.resend()[-1], schemas.Flush)
