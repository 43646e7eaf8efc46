"""StartupWatch: when `voxbus up` may say "running", and the one line it says otherwise."""
from bus import schemas
from bus.startup import StartupWatch

PROGRAMS = ("bus", "capture", "vad", "asr", "gateway")


def beat(stage: str, ok: bool = True, status: str = "ok") -> schemas.Heartbeat:
    return schemas.Heartbeat(stage=stage, pid=1, host="h", uptime_s=1.0, ok=ok, status=status)


def running(**pids) -> dict:
    return {p: ("RUNNING", pids.get(p, 100 + i)) for i, p in enumerate(PROGRAMS)}


def test_up_once_every_stage_is_heard_healthy():
    watch = StartupWatch(PROGRAMS)
    for stage in PROGRAMS[:-1]:
        watch.heard(beat(stage))
    assert not watch.judge(running()).done
    watch.heard(beat("gateway"))
    verdict = watch.judge(running())
    assert verdict.done and verdict.ok and verdict.warnings == ()


def test_a_missing_capture_device_and_a_placeholder_are_warnings():
    watch = StartupWatch(PROGRAMS)
    for stage in PROGRAMS:
        watch.heard(beat(stage))
    watch.heard(beat("capture", ok=False, status="device_missing"))
    watch.heard(beat("vad", ok=False, status="not implemented"))
    verdict = watch.judge(running())
    assert verdict.ok and verdict.warnings == ("capture: device_missing", "vad: not implemented")


def test_a_program_that_restarts_fails_at_once_with_its_last_log_line():
    watch = StartupWatch(PROGRAMS, last_log_line=lambda p: f"{p}: cannot listen on 127.0.0.1:8000")
    assert not watch.judge(running()).done
    verdict = watch.judge(running(gateway=999))
    assert verdict.done and not verdict.ok
    assert verdict.reason == "gateway exited (RUNNING): gateway: cannot listen on 127.0.0.1:8000"
    gave_up = StartupWatch(PROGRAMS).judge({**running(), "vad": ("FATAL", 0)})
    assert gave_up.done and gave_up.reason.startswith("vad exited (FATAL)")


def test_asr_that_cannot_load_its_model_fails_but_loading_waits():
    watch = StartupWatch(PROGRAMS)
    watch.heard(beat("asr", ok=False, status="loading model"))
    assert not watch.judge(running()).done
    watch.heard(beat("asr", ok=False, status="model directory /m/x does not exist; build one with: voxbus model"))
    verdict = watch.judge(running())
    assert verdict.done and verdict.reason.startswith("asr: model directory /m/x does not exist")


def test_the_timeout_names_who_is_missing_or_not_ok():
    watch = StartupWatch(PROGRAMS)
    watch.heard(beat("bus"))
    watch.heard(beat("vad", ok=False, status="backlog"))
    assert watch.timeout_reason(30) == ("not healthy after 30 s: capture (no heartbeat), vad (backlog), "
                                        "asr (no heartbeat), gateway (no heartbeat)")
