"""Diarization benchmark: DER and speaker count on every DIARIZATION.tsv clip, the threshold
sweep it was tuned with, the embedding model's real-time factor and the stage's RSS.

    .venv/bin/python -m tests.bench diarization [--model DIR]

DER: collar 0.25 s, overlapping speech scored (speaker/diarize/der.py), against the clips'
human RTTM. Speech regions: webrtcvad (aggressiveness 2), as the speaker stage finds them.
Writes tests/bench/results/diarization_bench.json.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bus.pcm import to_int16
from speaker.diarize.clustering import SpeakerCount
from speaker.diarize.der import diarization_error
from speaker.diarize.online import OnlineSpeakers
from speaker.diarize.pipeline import DiarizeOptions, diarize, embed_windows
from speaker.diarize.regions import speech_regions
from speaker.encoder.voice import VoiceEncoder
from tests.bench.common import print_table, write_json
from tests.speaker.eval_data import PRIMARY, diarization_available, diarization_clips

REPO = Path(__file__).resolve().parents[2]
THRESHOLDS = (0.60, 0.65, 0.70, 0.75, 0.80)
RSS_PROBE = """
import sys, numpy as np
from bus.pcm import to_int16
from speaker.diarize.pipeline import diarize
from speaker.diarize.regions import speech_regions
from speaker.encoder.voice import VoiceEncoder
from tests.speaker.eval_data import PRIMARY, diarization_clips
clip = next(c for c in diarization_clips() if c.id == PRIMARY)
wav = clip.load_audio()
diarize(wav, speech_regions(to_int16(wav)), VoiceEncoder(sys.argv[1]))
hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')]
print(int(hwm[0]) / 1024)
"""


def _default_model() -> Path:
    from speaker.build.builder import ensure_speaker_model
    from tests.conftest import TEST_CACHE
    return ensure_speaker_model(TEST_CACHE / "speaker-ge2e")


def _score(clips, encoder, options, hinted: bool = False) -> tuple[list[dict], float]:
    rows, errors, speech = [], 0.0, 0.0
    for clip, wav, regions in clips:
        count = SpeakerCount(num_speakers=clip.n_speakers()) if hinted else SpeakerCount()
        started = time.perf_counter()
        turns = diarize(wav, regions, encoder, options, count)
        seconds = time.perf_counter() - started
        result = diarization_error(clip.reference(), turns)
        found = len({t.speaker for t in turns})
        errors += result.missed + result.false_alarm + result.confusion
        speech += result.scored_speech
        rows.append({"clip": clip.id, "seconds": round(len(wav) / 16000, 1), "speakers": clip.n_speakers(),
                     "found": found, "count_ok": found == clip.n_speakers(), "DER %": round(100 * result.der, 1),
                     "miss %": round(100 * result.missed / result.scored_speech, 1),
                     "FA %": round(100 * result.false_alarm / result.scored_speech, 1),
                     "conf %": round(100 * result.confusion / result.scored_speech, 1),
                     "rtf": round(seconds / (len(wav) / 16000), 4)})
    return rows, 100 * errors / speech


def _online(clips, encoder) -> tuple[list[dict], float, dict]:
    """Each clip as a live stream: its webrtcvad regions (gaps of 0.5 s bridged, like vad's 500 ms
    endpoint) are the finals, assigned one by one as they would arrive."""
    rows, errors, speech, spent, audio, slowest = [], 0.0, 0.0, 0.0, 0.0, 0.0
    for clip, wav, _ in clips:
        online, turns = OnlineSpeakers(encoder), []
        for start, end in speech_regions(to_int16(wav), bridge_s=0.5):
            started = time.perf_counter()
            turns += online.assign(wav[int(start * 16000):int(end * 16000)], start)
            took = time.perf_counter() - started
            spent, slowest = spent + took, max(slowest, took)
        audio += len(wav) / 16000
        result = diarization_error(clip.reference(), turns)
        errors += result.missed + result.false_alarm + result.confusion
        speech += result.scored_speech
        rows.append({"clip": clip.id, "online DER %": round(100 * result.der, 1),
                     "found": len({t.speaker for t in turns}), "speakers": clip.n_speakers()})
    return rows, 100 * errors / speech, {"online_rtf": round(spent / audio, 4), "slowest_final_ms": round(1000 * slowest, 1)}


def _embedding_cost(encoder: VoiceEncoder, clips) -> dict:
    """The model alone: one 1.6 s window, and every window of the primary clip (features included)."""
    window = np.random.default_rng(0).random((1, encoder.window_frames, 40), dtype=np.float32)
    encoder.embed_mels([window[0]])
    runs = []
    for _ in range(20):
        started = time.perf_counter()
        encoder.embed_mels([window[0]])
        runs.append(time.perf_counter() - started)
    clip, wav, regions = next(c for c in clips if c[0].id == PRIMARY)
    started = time.perf_counter()
    windows = embed_windows(wav, regions, encoder, DiarizeOptions())
    whole = time.perf_counter() - started
    one_ms = 1000 * float(np.median(runs))
    return {"one_window_ms": round(one_ms, 2), "primary_windows": len(windows.spans),
            "primary_embedding_rtf": round(whole / (len(wav) / 16000), 4),
            "live_rtf_one_window_per_0.8s": round(one_ms / 800, 4)}


def _rss_mb(model: Path) -> float:
    out = subprocess.run([sys.executable, "-c", RSS_PROBE, str(model)], cwd=REPO, capture_output=True, text=True,
                         check=True)
    return round(float(out.stdout.strip().splitlines()[-1]), 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="speaker model dir (default: built into the test cache)")
    args = parser.parse_args(argv)
    if not diarization_available():
        raise SystemExit("bench: ../shared/eval/DIARIZATION.tsv is absent; the diarization bench needs it")
    model = args.model or _default_model()
    encoder = VoiceEncoder(model)
    clips = []
    for clip in diarization_clips():
        wav = clip.load_audio()
        clips.append((clip, wav, speech_regions(to_int16(wav))))
    rows, pooled = _score(clips, encoder, DiarizeOptions())
    hinted_rows, hinted_pooled = _score(clips, encoder, DiarizeOptions(), hinted=True)
    for row, hinted in zip(rows, hinted_rows):
        row["DER % (num_speakers given)"] = hinted["DER %"]
    sweep = [{"threshold": t, "pooled DER %": round(_score(clips, encoder, DiarizeOptions(threshold=t))[1], 1),
              "count ok": sum(r["count_ok"] for r in _score(clips, encoder, DiarizeOptions(threshold=t))[0])}
             for t in THRESHOLDS]
    online_rows, online_pooled, online_cost = _online(clips, encoder)
    for row, online in zip(rows, online_rows):
        row["online DER %"] = online["online DER %"]
    cost = {**_embedding_cost(encoder, clips), **online_cost}
    cost["rss_mb"] = _rss_mb(model)
    print_table("diarization (collar 0.25 s, overlap scored)", rows)
    print(f"pooled DER {pooled:.1f} % (num_speakers given: {hinted_pooled:.1f} %); speaker count right on "
          f"{sum(r['count_ok'] for r in rows)} of {len(rows)} clips")
    print(f"online (final by final): pooled DER {online_pooled:.1f} %")
    print_table("threshold sweep (the default, 0.70, was chosen on these clips)", sweep)
    print_table("embedding model cost (1 thread)", [cost])
    path = write_json("diarization_bench", {"clips": rows, "pooled_der_pct": round(pooled, 2),
                                            "pooled_der_hinted_pct": round(hinted_pooled, 2), "sweep": sweep,
                                            "pooled_der_online_pct": round(online_pooled, 2),
                                            "cost": cost, "model": json.loads((model / "manifest.json").read_text())})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
