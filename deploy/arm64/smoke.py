"""Smoke suite for an installed voxbus checkout, the same on x86-64 and under arm64 emulation.

Run with the checkout's venv python after `bash deploy/setup.sh`:

    .venv/bin/python deploy/arm64/smoke.py --models-dir DIR --eval ../shared/eval --out result.json

Steps (each recorded pass/fail with its wall time, never stopping at the first failure):
  1. model build: tiny fp32 into DIR (int8 is setup's default model, built into DIR or
     found there already)
  2. `voxbus transcribe` of three eval clips with the int8 and the fp32 model
  3. `voxbus up` -> `voxbus status` -> a WebSocket session of one clip on /stream -> `voxbus down`

The WebSocket client needs the `websockets` package; give its folder with --ws-lib so that
the server's venv stays exactly what setup installed (the gateway must find its own).
Times under emulation say that it runs, nothing about a Pi's speed.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VOXBUS = [sys.executable, "-m", "bus.cli"]
CLIPS = ("ls-1089-134686-0000", "ls-1089-134686-0001", "ls-1089-134691-0001")
WS_CLIP = "ls-1089-134691-0001"
MODELS = {"int8": "tiny.en-int8", "fp32": "tiny.en-fp32"}
PREFIX = {"build": "model build", "transcribe": "voxbus transcribe", "stack": ("voxbus up", "gateway /health",
          "voxbus status", "WebSocket", "voxbus down")}


class Steps:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def run(self, name: str, func, *args):
        start = time.monotonic()
        try:
            detail = func(*args)
            ok = True
        except Exception as exc:  # a smoke suite reports every failure and goes on
            detail = f"{type(exc).__name__}: {' '.join(str(exc).split())[:600]}"
            ok = False
        row = {"step": name, "ok": ok, "seconds": round(time.monotonic() - start, 1), "detail": detail}
        self.rows.append(row)
        print(f"smoke: {'PASS' if ok else 'FAIL'} {name} ({row['seconds']} s): {str(detail)[:200]}", flush=True)
        return detail if ok else None


def _cmd(args: list[str], env: dict | None = None, timeout: float = 1800) -> str:
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[2:])} exited {proc.returncode}: {proc.stderr.strip()[-600:]}")
    return proc.stdout


def read_manifest(eval_dir: Path) -> dict[str, dict]:
    rows = {}
    lines = (eval_dir / "MANIFEST.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    for line in lines[1:]:
        row = dict(zip(header, line.split("\t")))
        rows[row["id"]] = row
    return rows


def build_model(models_dir: Path, precision: str) -> str:
    target = models_dir / MODELS[precision]
    if (target / "manifest.json").exists():
        return f"{target} (already there)"
    _cmd(VOXBUS + ["model", "build", "tiny", "--out", str(target), "--precision", precision])
    return str(target)


def transcribe(model: Path, clip: Path) -> str:
    return _cmd(VOXBUS + ["transcribe", str(clip), "--model", str(model), "--language", "en"]).strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(base: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{base}/health", timeout=5) as resp:
                return f"/health {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"/health {exc.code}: {exc.read()[:300]!r}"
        except OSError as exc:
            last = str(exc)
        time.sleep(1)
    raise TimeoutError(f"not healthy after {timeout:g} s: {last}")


async def ws_session(base: str, clip: Path, timeout: float) -> dict:
    """One clip over /stream (s16, 16 kHz, no partials) at twice real time, then silence so that
    vad ends the utterance; wait up to `timeout` s for its final (emulation is slow: the gateway's
    eof waits only 30 s), pinging so the idle timeout does not close the session; then eof."""
    import numpy as np
    import soundfile
    import websockets

    audio, rate = soundfile.read(str(clip), dtype="int16")
    if rate != 16000:
        raise ValueError(f"{clip} is {rate} Hz, the smoke sends 16 kHz")
    pcm = np.concatenate([np.ascontiguousarray(audio), np.zeros(int(1.5 * rate), np.int16)]).tobytes()
    finals, events = [], []
    url = f"ws://{base}/stream?language=en&encoding=s16&sample_rate=16000&partials=false"
    async with websockets.connect(url, max_size=None, open_timeout=60, ping_interval=None) as ws:
        ready = json.loads(await asyncio.wait_for(ws.recv(), 60))
        if ready.get("type") != "ready":
            raise RuntimeError(f"first event is not ready: {ready}")
        chunk = 3200 * 2  # 200 ms of s16 at 16 kHz, sent at twice real time
        for start in range(0, len(pcm), chunk):
            await ws.send(pcm[start:start + chunk])
            await asyncio.sleep(0.1)
        deadline = time.monotonic() + timeout
        eof_sent = False
        try:
            while True:
                if not eof_sent and (finals or time.monotonic() > deadline):
                    await ws.send(json.dumps({"type": "eof"}))
                    eof_sent = True
                try:
                    event = json.loads(await asyncio.wait_for(ws.recv(), 10))
                except asyncio.TimeoutError:
                    await ws.send(json.dumps({"type": "ping"}))
                    continue
                events.append(event.get("type"))
                if event.get("type") == "final":
                    finals.append(event["text"].strip())
                elif event.get("type") == "error":
                    raise RuntimeError(f"error event: {event}")
        except websockets.ConnectionClosedOK:
            pass
    if not finals:
        raise RuntimeError(f"no final before the close (events: {[e for e in events if e != 'pong']})")
    return {"text": " ".join(finals), "finals": len(finals)}


def stack_steps(steps: Steps, models_dir: Path, clip: Path, health_timeout: float, final_timeout: float) -> dict:
    run_dir = Path(tempfile.mkdtemp(prefix="vbsmoke-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXBUS_")}
    env.update(VOXBUS_RUN_DIR=str(run_dir), VOXBUS_RUN__MODELS_DIR=str(models_dir),
               VOXBUS_ASR__MODEL=MODELS["int8"], VOXBUS_GATEWAY__PORT=str(port))
    base = f"127.0.0.1:{port}"
    out: dict = {"run_dir": str(run_dir)}
    if steps.run("voxbus up", _cmd, VOXBUS + ["up"], env, 300) is None:
        out["logs"] = _logs(run_dir)
        return out
    steps.run("gateway /health 200", wait_healthy, base, health_timeout)
    status = steps.run("voxbus status", _cmd, VOXBUS + ["status"], env, 60)
    out["status"] = status
    ws = steps.run(f"WebSocket /stream session ({clip.stem})",
                   lambda: asyncio.run(ws_session(base, clip, final_timeout)))
    out["ws"] = ws
    steps.run("voxbus down", _cmd, VOXBUS + ["down"], env, 120)
    out["logs"] = _logs(run_dir)
    supervisord_log = out["logs"].get("supervisord.log", "")
    out["supervisord_crit"] = [line for line in supervisord_log.splitlines() if " CRIT " in line]
    return out


def _logs(run_dir: Path) -> dict[str, str]:
    logs = {}
    for path in sorted((run_dir / "log").glob("*.log")) if (run_dir / "log").exists() else []:
        logs[path.name] = path.read_text(errors="replace")[-4000:]
    return logs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--eval", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--ws-lib", help="folder holding the websockets package, for the client only")
    parser.add_argument("--health-timeout", type=float, default=600)
    parser.add_argument("--final-timeout", type=float, default=1200, help="s to wait for the WebSocket final")
    parser.add_argument("--skip", nargs="*", default=[], choices=("build", "transcribe", "stack"),
                        help="leave out these steps (e.g. to rerun only the stack)")
    parser.add_argument("--merge", type=Path, help="an earlier result whose skipped parts to keep")
    args = parser.parse_args()
    if args.ws_lib:
        sys.path.insert(0, args.ws_lib)
    manifest_path = args.eval / "MANIFEST.tsv"
    if not manifest_path.exists():
        print(f"smoke: error: no eval manifest at {manifest_path}", file=sys.stderr)
        return 2
    manifest = read_manifest(args.eval)
    steps = Steps()
    result: dict = {"machine": platform.machine(), "python": platform.python_version(), "started": time.time()}
    try:
        import onnxruntime
        result["onnxruntime"] = onnxruntime.__version__
    except ImportError as exc:
        result["onnxruntime"] = f"import failed: {exc}"
    earlier = json.loads(args.merge.read_text()) if args.merge and args.merge.exists() else {}
    kept = [row for row in earlier.get("steps", [])
            if any(row["step"].startswith(PREFIX[group]) for group in args.skip)]
    steps.rows.extend(kept)
    if "build" not in args.skip:
        for precision in ("int8", "fp32"):
            steps.run(f"model build tiny {precision}", build_model, args.models_dir, precision)
    transcripts: dict = earlier.get("transcripts", {}) if "transcribe" in args.skip else {}
    if "transcribe" not in args.skip:
        for precision, name in MODELS.items():
            for clip_id in CLIPS:
                clip = args.eval / manifest[clip_id]["path"]
                text = steps.run(f"voxbus transcribe {clip_id} ({precision})", transcribe,
                                 args.models_dir / name, clip)
                transcripts.setdefault(precision, {})[clip_id] = text
    result["references"] = {c: manifest[c]["transcript"] for c in CLIPS}
    result["transcripts"] = transcripts
    if "stack" not in args.skip:
        result["stack"] = stack_steps(steps, args.models_dir, args.eval / manifest[WS_CLIP]["path"],
                                      args.health_timeout, args.final_timeout)
    else:
        result["stack"] = earlier.get("stack")
    order = ["model build", "voxbus transcribe", "voxbus up", "gateway", "voxbus status", "WebSocket", "voxbus down"]
    steps.rows.sort(key=lambda row: next((i for i, p in enumerate(order) if row["step"].startswith(p)), 99))
    result["steps"] = steps.rows
    result["passed"] = all(row["ok"] for row in steps.rows)
    args.out.write_text(json.dumps(result, indent=1))
    failed = [row["step"] for row in steps.rows if not row["ok"]]
    print(f"smoke: {len(steps.rows) - len(failed)} passed, {len(failed)} failed" + (f": {failed}" if failed else ""))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
