"""Named speakers: how close an enrolled voice is to the speaker it should name, and to the others
(what `[speaker] name_threshold` was chosen on).

    .venv/bin/python -m tests.bench speaker_names [--model DIR]

For every DIARIZATION.tsv clip and reference speaker with ≥ 2 s where only they speak in the
clip's first half (by the RTTM), that speech is enrolled (speaker/voices.py) and the second half
is diarized; each of our speakers is matched to the reference speaker it overlaps most. Prints
the cosine of the voice with its own speaker's centroid and with the others', and what each
threshold would name. Writes tests/bench/results/speaker_names_bench.json.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bus.pcm import to_int16
from bus.speaker_turns import speaker_at
from speaker.diarize.pipeline import DiarizeOptions, diarize_with_centroids
from speaker.diarize.regions import speech_regions
from speaker.encoder.voice import VoiceEncoder
from speaker.voices import Voice, VoiceError, names_for, voice_of
from tests.bench.common import print_table, write_json
from tests.bench.diarization_bench import _default_model
from tests.speaker.eval_data import clean_speech, diarization_available, diarization_clips

RATE = 16000
THRESHOLDS = (0.75, 0.80, 0.85, 0.90)


def trials(encoder, options: DiarizeOptions) -> list[dict]:
    rows = []
    for clip in diarization_clips():
        audio, reference = clip.load_audio(), clip.reference()
        half = len(audio) / RATE / 2
        second = audio[int(half * RATE):]
        turns, centroids = diarize_with_centroids(second, speech_regions(to_int16(second)), encoder, options)
        ref = [{"start": t.start - half, "end": t.end - half, "speaker": t.speaker} for t in reference if t.end > half]
        overlap: dict[str, dict[str, float]] = {}
        for t in turns:
            who = speaker_at(t.start, t.end, ref)
            overlap.setdefault(t.speaker, {}).setdefault(who, 0.0)
            overlap[t.speaker][who] += t.end - t.start
        match = {label: max(d, key=d.get) for label, d in overlap.items()}
        for speaker in sorted({t.speaker for t in reference}):
            runs = clean_speech(reference, speaker, half)
            if sum(b - a for a, b in runs) < 2.0:
                continue
            sample = np.concatenate([audio[int(a * RATE):int(b * RATE)] for a, b in runs])
            try:
                embedding, speech_s = voice_of(sample, speech_regions(to_int16(sample)), encoder, options)
            except VoiceError:
                continue
            voice = Voice(speaker, embedding, speech_s, 0.0)
            own = [round(float(np.dot(embedding, c)), 3) for lab, c in centroids.items() if match.get(lab) == speaker]
            other = [round(float(np.dot(embedding, c)), 3) for lab, c in centroids.items() if match.get(lab) != speaker]
            row = {"clip": clip.id, "speaker": speaker, "sample_s": round(speech_s, 1), "own": own, "others": other}
            for threshold in THRESHOLDS:
                named = names_for(centroids, [voice], threshold)
                right = any(match.get(lab) == speaker for lab in named)
                row[f"at {threshold:.2f}"] = "right" if right else ("WRONG" if named else "-")
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench speaker_names")
    parser.add_argument("--model", type=Path, default=None, help="speaker model dir (default: the test cache's)")
    args = parser.parse_args(argv)
    if not diarization_available():
        print("../shared/eval/DIARIZATION.tsv is absent: nothing to measure")
        return 2
    rows = trials(VoiceEncoder(args.model or _default_model()), DiarizeOptions())
    print_table("enrolled voice vs the second half's speakers (cosine)", rows)
    write_json("speaker_names_bench", rows)
    return 0
