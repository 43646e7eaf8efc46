"""`voxbus up` / `voxbus down`: run every stage under supervisord, and stop them all.

The supervisord config is rendered from the loaded Config into the run directory
each time `up` runs, so it always matches the config. Each program is
`<python> -m <stage> [--config FILE]`; every stage pins its own cores from config.
`up` talks to supervisord over the same XML-RPC unix socket supervisorctl uses, and returns
once every stage is heard healthy on the bus (bus/startup.py), else stops it all and says why.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import pwd
import re
import shlex
import subprocess
import sys
import time
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from config.cores import STAGES
from config.paths import ensure_private_dir

PRIORITY = {"bus": 10, "capture": 20, "vad": 20, "asr": 20, "store": 20, "speaker": 20, "gateway": 30}  # bus first
LOG_MAXBYTES = "10MB"
LOG_BACKUPS = 5
STOPWAIT_S = 10
START_TIMEOUT_S = 60.0  # every stage RUNNING and heard healthy


def programs(cfg) -> tuple[str, ...]:
    """The stages supervisord runs: every one of the core map, and the transcript store and the
    speaker (diarization) stage when enabled."""
    store, speaker = getattr(cfg, "store", None), getattr(cfg, "speaker", None)
    return STAGES + (("store",) if store is not None and store.enabled else ()) \
        + (("speaker",) if speaker is not None and speaker.enabled else ())


@dataclass(frozen=True)
class SupervisorPaths:
    run_dir: Path
    log_dir: Path
    conf: Path
    socket: Path
    pidfile: Path

    @classmethod
    def for_config(cls, cfg) -> "SupervisorPaths":
        run_dir = Path(cfg.run_dir)
        log_dir = Path(cfg.run.log_dir).expanduser() if cfg.run.log_dir else run_dir / "log"
        return cls(run_dir, log_dir, run_dir / "supervisord.conf", run_dir / "supervisor.sock",
                   run_dir / "supervisord.pid")


# ---- rendering (pure) --------------------------------------------------------------

def _conf_value(text: str) -> str:
    """supervisord expands %(name)s in values, so a literal % is doubled."""
    return str(text).replace("%", "%%")


def stage_environment(cfg, env: Mapping[str, str]) -> dict[str, str]:
    """What every program gets besides supervisord's inherited environment."""
    out = {k: v for k, v in sorted(env.items()) if k.startswith("VOXBUS_") and k != "VOXBUS_CONFIG"}
    out["VOXBUS_RUN_DIR"] = cfg.run_dir   # every stage resolves the same run dir as `up` did
    out["PYTHONUNBUFFERED"] = "1"
    return out


def _environment_line(environment: Mapping[str, str]) -> str:
    for key, value in environment.items():
        if '"' in value:   # supervisord's KEY="value" parser has no escape for a double quote
            raise ValueError(f"cannot pass {key} to supervisord: its value contains a double quote")
    return ",".join(f'{key}="{_conf_value(value)}"' for key, value in environment.items())


def asr_programs(cfg) -> list[tuple[str, str]]:
    """(program name, model) for every asr worker: `asr.workers` per served model; the live
    default's first keeps the name `asr`, the others are asr-<model>-<n>."""
    asr = cfg.asr
    out = []
    for model in [asr.model] + [m for m in asr.models if m != asr.model]:
        for n in range(asr.workers):
            name = "asr" if not out else f"asr-{re.sub(r'[^A-Za-z0-9_-]', '_', model)}-{n}"
            out.append((name, model))
    return out


def program_section(stage: str, python: str, config_file: str, paths: SupervisorPaths,
                    name: str = "", environment: Mapping[str, str] | None = None) -> str:
    command = [python, "-m", stage] + (["--config", config_file] if config_file else [])
    name = name or stage
    log = paths.log_dir / f"{name}.log"
    extra = f"environment={_environment_line(environment)}\n" if environment else ""
    return f"""
[program:{name}]
{extra}command={_conf_value(shlex.join(command))}
directory={_conf_value(str(paths.run_dir))}
priority={PRIORITY[stage]}
autostart=true
autorestart=true
startsecs=1
startretries=1000000
stopsignal=TERM
stopwaitsecs={STOPWAIT_S}
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile={_conf_value(str(log))}
stdout_logfile_maxbytes={LOG_MAXBYTES}
stdout_logfile_backups={LOG_BACKUPS}
"""


def current_user() -> str:
    """The name of the user running `voxbus up` (its uid as text if it has no name)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def render(cfg, paths: SupervisorPaths, python: str, env: Mapping[str, str], user: str | None = None) -> str:
    """The whole supervisord.conf for this config.

    `user=` is always set, to whoever runs `voxbus up` (or `user`): supervisord stays the user
    it was started as, and stages inherit it. Without it, supervisord started as root logs
    `CRIT Supervisor is running as root`; the appliance runs as a dedicated user under
    deploy/voxbus.service, so root is only ever someone's explicit choice (`sudo make run`).
    """
    config_file = str(Path(cfg.source_file).resolve()) if cfg.source_file else ""
    head = f"""; Generated by `voxbus up` from the voxbus config; edits are overwritten on the next `up`.
[unix_http_server]
file={_conf_value(str(paths.socket))}
chmod=0700

[supervisord]
logfile={_conf_value(str(paths.log_dir / "supervisord.log"))}
logfile_maxbytes={LOG_MAXBYTES}
logfile_backups={LOG_BACKUPS}
loglevel=info
pidfile={_conf_value(str(paths.pidfile))}
childlogdir={_conf_value(str(paths.log_dir))}
directory={_conf_value(str(paths.run_dir))}
identifier=voxbus
user={_conf_value(user or current_user())}
environment={_environment_line(stage_environment(cfg, env))}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{_conf_value(str(paths.socket))}
"""
    sections = []
    for stage in programs(cfg):
        if stage == "asr" and (cfg.asr.models or cfg.asr.workers > 1):  # one program per worker, each its model
            sections += [program_section(stage, python, config_file, paths, name, {"VOXBUS_ASR__MODEL": model})
                         for name, model in asr_programs(cfg)]
        else:
            sections.append(program_section(stage, python, config_file, paths))
    return head + "".join(sections)


EXAMPLE_PATH = Path(__file__).resolve().parent.parent / "deploy" / "supervisord.conf"


def example_conf() -> str:
    """deploy/supervisord.conf: what `up` writes for run dir /run/voxbus and the default config.

    Regenerate with `python -c "import bus.supervise as s; s.EXAMPLE_PATH.write_text(s.example_conf())"`.
    """
    from config import load_config

    cfg = dataclasses.replace(load_config(env={}, check_cores=False), run_dir="/run/voxbus", source_file="")
    text = render(cfg, SupervisorPaths.for_config(cfg), "/opt/voxbus/.venv/bin/python", {}, user="voxbus")
    return text.replace(text.splitlines()[0], "; EXAMPLE of what `voxbus up` writes to <run dir>/supervisord.conf "
                        "(run dir /run/voxbus, default config, user voxbus).\n; Do not edit: `voxbus up` renders "
                        "it from the config each time (bus/supervise.py).", 1)


# ---- talking to supervisord ----------------------------------------------------------

def pid_alive(pid: int) -> bool:
    """A process that exists and is not a zombie (an unreaped zombie has already exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def supervisord_pid(paths: SupervisorPaths) -> int | None:
    """The pid of the live supervisord serving this run dir, else None."""
    try:
        pid = int(paths.pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if b"supervisord" in cmdline and pid_alive(pid) else None


def rpc(paths: SupervisorPaths):
    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(None, None, f"unix://{paths.socket}")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


def program_states(paths: SupervisorPaths) -> dict[str, str]:
    """{program: RUNNING|STARTING|BACKOFF|...}; empty while supervisord is not answering."""
    try:
        return {info["name"]: info["statename"] for info in rpc(paths).supervisor.getAllProcessInfo()}
    except (OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError):
        return {}


def program_info(paths: SupervisorPaths) -> dict[str, tuple[str, int]]:
    """{program: (state, pid)}; empty while supervisord is not answering."""
    try:
        return {info["name"]: (info["statename"], info["pid"]) for info in rpc(paths).supervisor.getAllProcessInfo()}
    except (OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError):
        return {}


EXITED_EARLY = ("BACKOFF", "EXITED", "FATAL")   # supervisord states of a program that stopped on its own


def wait_running(paths: SupervisorPaths, timeout: float, stages: tuple[str, ...] = STAGES) -> dict[str, str]:
    """Poll until every stage is RUNNING, one has exited before it ever ran (EXITED_EARLY), or
    `timeout`; return the last states seen."""
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        states = program_states(paths)
        if states and all(states.get(stage) == "RUNNING" for stage in stages):
            break
        if any(states.get(stage) in EXITED_EARLY for stage in stages):
            break   # it exited before supervisord counted it running: waiting on shows nothing new
        time.sleep(0.2)
    return states


def stop_supervisord(paths: SupervisorPaths, pid: int, timeout: float) -> bool:
    """Ask supervisord to shut down (it stops every program first); True once its pid is gone."""
    try:
        rpc(paths).supervisor.shutdown()
    except (OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError):
        os.kill(pid, 15)   # not answering on its socket: SIGTERM means the same shutdown to supervisord
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


# ---- the commands --------------------------------------------------------------------

def _load(argv: list[str], prog: str, extra) -> tuple[argparse.Namespace, object]:
    from bus.stage import load_or_exit

    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--config", help="TOML file over the defaults")
    extra(parser)
    args = parser.parse_args(argv)
    if getattr(args, "timeout", 1) <= 0:
        parser.error(f"--timeout {args.timeout}: expected a positive number of seconds")
    return args, load_or_exit(args.config, prog)


def _up_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--foreground", action="store_true",
                        help="run supervisord in the foreground (for systemd or a container)")
    parser.add_argument("--timeout", type=float, default=START_TIMEOUT_S,
                        help=f"seconds to wait for every stage to be running and healthy (default {START_TIMEOUT_S:g})")


def write_conf(cfg, paths: SupervisorPaths) -> None:
    ensure_private_dir(paths.run_dir)
    paths.log_dir.mkdir(parents=True, exist_ok=True)
    # The conf holds every VOXBUS_* variable, which may carry a camera URL's credentials.
    fd = os.open(paths.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(render(cfg, paths, sys.executable, os.environ))
    os.chmod(paths.conf, 0o600)
    for stale in (paths.pidfile, paths.socket):   # left by a supervisord that was killed
        stale.unlink(missing_ok=True)


def up_main(argv: list[str]) -> int:
    args, cfg = _load(argv, "voxbus up", _up_args)
    paths = SupervisorPaths.for_config(cfg)
    pid = supervisord_pid(paths)
    if pid is not None:
        if args.foreground:  # a service manager must not take "already running" for a clean start
            sys.stderr.write(f"voxbus up: error: already running (supervisord pid {pid}, run dir {paths.run_dir})\n")
            return 1
        sys.stdout.write(f"voxbus up: already running (supervisord pid {pid}, run dir {paths.run_dir})\n")
        return 0
    try:
        write_conf(cfg, paths)
    except OSError as exc:
        sys.stderr.write(f"voxbus up: error: cannot write {exc.filename or paths.conf}: {exc.strerror or exc}\n")
        return 1
    except ValueError as exc:
        sys.stderr.write(f"voxbus up: error: {exc}\n")
        return 1
    command = [sys.executable, "-m", "supervisor.supervisord", "-c", str(paths.conf)]
    if args.foreground:
        os.execv(sys.executable, command + ["-n"])   # supervisord becomes this process, for systemd
    return _start_background(command, paths, args.timeout, cfg, programs(cfg))


def _wait_healthy(cfg, paths: SupervisorPaths, stages: tuple[str, ...], timeout: float):
    from bus.startup import StartupWatch, last_line, wait_healthy

    watch = StartupWatch(stages, lambda program: last_line(paths.log_dir / f"{program}.log"))
    return wait_healthy(cfg, watch, lambda: program_info(paths), timeout)


def _start_background(command: list[str], paths: SupervisorPaths, timeout: float, cfg,
                      stages: tuple[str, ...] = STAGES) -> int:
    launch_log = paths.log_dir / "supervisord-launch.log"
    with open(launch_log, "wb") as out:
        # supervisord forks into the background; the process we start exits at once.
        returncode = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out).returncode
    if returncode != 0:
        detail = launch_log.read_text(errors="replace").strip().splitlines()
        sys.stderr.write(f"voxbus up: error: supervisord did not start (exit {returncode}): "
                         f"{detail[-1] if detail else 'no output'}; see {launch_log}\n")
        return 1
    started = time.monotonic()
    states = wait_running(paths, timeout, stages)
    pid = supervisord_pid(paths)
    if pid is not None and all(states.get(stage) == "RUNNING" for stage in stages):
        verdict = _wait_healthy(cfg, paths, stages, max(1.0, timeout - (time.monotonic() - started)))
        for warning in verdict.warnings:
            sys.stderr.write(f"voxbus up: warning: {warning}\n")
        if verdict.ok:
            sys.stdout.write(f"voxbus up: running (supervisord pid {pid}); logs in {paths.log_dir}\n")
            return 0
        sys.stderr.write(f"voxbus up: error: {verdict.reason}; see {paths.log_dir}; stopping everything\n")
        stop_supervisord(paths, pid, STOPWAIT_S + 20)
        return 1
    bad = [stage for stage in stages if states.get(stage) != "RUNNING"]
    logs = ", ".join(str(paths.log_dir / f"{stage}.log") for stage in bad)
    exited = [stage for stage in bad if states.get(stage) in EXITED_EARLY]
    if exited:
        from bus.startup import last_line
        stage = exited[0]
        sys.stderr.write(f"voxbus up: error: {stage} exited ({states[stage]}): "
                         f"{last_line(paths.log_dir / f'{stage}.log') or 'no output'}; "
                         f"see {paths.log_dir / f'{stage}.log'}; stopping everything\n")
        if pid is not None:
            stop_supervisord(paths, pid, STOPWAIT_S + 20)
        return 1
    described = ", ".join(f"{stage} ({states.get(stage, 'no answer')})" for stage in bad)
    sys.stderr.write(f"voxbus up: error: not running after {timeout:g} s: {described}; "
                     f"see {logs} and {paths.log_dir / 'supervisord.log'}; stopping everything\n")
    if pid is not None:
        stop_supervisord(paths, pid, STOPWAIT_S + 20)
    return 1


def down_main(argv: list[str]) -> int:
    _, cfg = _load(argv, "voxbus down", lambda parser: None)
    paths = SupervisorPaths.for_config(cfg)
    pid = supervisord_pid(paths)
    if pid is None:
        sys.stdout.write(f"voxbus down: not running (run dir {paths.run_dir})\n")
        return 0
    # Every program gets stopwaitsecs to stop before SIGKILL; allow for that plus slack.
    if not stop_supervisord(paths, pid, STOPWAIT_S + 20):
        sys.stderr.write(f"voxbus down: error: supervisord pid {pid} still running after "
                         f"{STOPWAIT_S + 20} s; see {paths.log_dir / 'supervisord.log'}\n")
        return 1
    sys.stdout.write(f"voxbus down: stopped (supervisord pid {pid})\n")
    return 0
