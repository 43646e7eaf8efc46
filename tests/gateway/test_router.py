"""Router: who gets which bus message."""
import asyncio

from bus import schemas
from gateway.router import Router


def test_routes_jobs_streams_listeners_and_health():
    async def scenario():
        r = Router()
        job_q, stream_q, listener = r.watch_job("j1"), r.watch_stream("s1"), r.listen()
        r.route(schemas.JobSegments(job="j1", count=1), 0.0)
        r.route(schemas.SpeechStart(stream="s1", utt=0, offset=0), 0.0)
        r.route(schemas.Final(utt=0, text="t", start=0, end=1, stream="other"), 0.0)
        r.route(schemas.Heartbeat(stage="vad", pid=1, host="h", uptime_s=1, ok=True), 5.0)
        r.route(schemas.Final(utt=0, text="late", start=0, end=1, job="gone", index=0), 0.0)
        assert isinstance(job_q.get_nowait(), schemas.JobSegments)
        assert isinstance(stream_q.get_nowait(), schemas.SpeechStart)
        # vad's heartbeats go to every session and job: a new instance is their cue to resend
        assert isinstance(stream_q.get_nowait(), schemas.Heartbeat) and stream_q.empty()
        assert isinstance(job_q.get_nowait(), schemas.Heartbeat) and r.vad_instance == ""
        assert [type(listener.get_nowait()).__name__ for _ in range(4)] == ["JobSegments", "SpeechStart", "Final",
                                                                             "Final"]
        assert r.health.missing(["vad", "bus"], 6.0, 3.0) == ["bus"]
        assert r.counters["job_unclaimed"] == 1
        r.forget_job("j1")
        r.forget_stream("s1")
        r.unlisten(listener)
        assert not r.jobs and not r.streams and not r.listeners

    asyncio.run(scenario())


def test_a_slow_listener_loses_its_oldest_events():
    async def scenario():
        r = Router()
        q = r.listen()
        for i in range(q.maxsize + 5):
            r.route(schemas.SpeechStart(stream="s", utt=i, offset=0), 0.0)
        assert q.qsize() == q.maxsize and q.get_nowait().utt == 5
        assert r.counters["events_dropped"] == 5

    asyncio.run(scenario())
