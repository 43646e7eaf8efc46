"""HealthTable: who is missing, and old instances forgotten."""
from bus.schemas import Heartbeat
from bus.status import HealthTable


def beat(stage, instance="i1", ok=True):
    return Heartbeat(stage=stage, pid=1, host="h", uptime_s=1.0, ok=ok, instance=instance)


def test_missing_names_stages_not_heard_recently():
    table = HealthTable()
    table.see(beat("bus"), now=0.0)
    table.see(beat("asr"), now=9.0)
    assert table.missing(["bus", "vad", "asr"], now=10.0, timeout=3.0) == ["bus", "vad"]


def test_restarted_instances_are_forgotten_after_a_while():
    table = HealthTable(forget_after_s=60)
    for restart in range(100):
        table.see(beat("asr", instance=f"h-{restart}"), now=restart * 10.0)
    assert len(table.rows()) <= 7


def test_not_ok_rows_are_listed():
    table = HealthTable()
    table.see(beat("asr", ok=False), now=0.0)
    assert [r.heartbeat.stage for r in table.not_ok(now=1.0, timeout=3.0)] == ["asr"]
