"""resemblyzer's own torch encoder as the reference for ours.

Run where torch, librosa and resemblyzer are installed (a build-time venv, not the project's):

    PYTHONPATH=. REF_VENV/bin/python -m tests.speaker.reference --model DIR [--eval]

It writes tests/fixtures/speaker/resemblyzer_reference.npz (librosa's mel and resemblyzer's
embeddings of seeded synthetic voices), which test_reference.py holds our numpy + onnxruntime
encoder to in every run, and with --eval prints the cosine on every DIARIZATION.tsv clip.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "speaker" / "resemblyzer_reference.npz"
SAMPLE_RATE = 16000


def synthetic_voice(seed: int, seconds: float = 3.0) -> np.ndarray:
    """A voiced-like signal: a gliding harmonic series with formant-ish weights and noise (seeded)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = rng.uniform(90, 240) * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(2, 5) * t))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    formants = rng.uniform(300, 3000, size=3)
    wav = np.zeros_like(t)
    for k in range(1, 30):
        weight = sum(np.exp(-((k * f0.mean() - f) / 200) ** 2) for f in formants) + 0.05 / k
        wav += weight * np.sin(k * phase)
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(1, 4) * t) ** 2
    wav = wav * envelope + 0.01 * rng.standard_normal(len(t))
    return (0.1 * wav / np.abs(wav).max()).astype(np.float32)


SEEDS = (1, 2, 3)


def _write_fixture() -> None:
    import librosa
    from resemblyzer import VoiceEncoder as TorchEncoder
    from resemblyzer.audio import normalize_volume, wav_to_mel_spectrogram
    torch_encoder = TorchEncoder("cpu", verbose=False)
    wavs = [normalize_volume(synthetic_voice(seed), -30, increase_only=True) for seed in SEEDS]
    np.savez_compressed(
        FIXTURE, seeds=np.array(SEEDS), librosa_version=np.array(librosa.__version__),
        mel=wav_to_mel_spectrogram(wavs[0]),
        embeddings=np.stack([torch_encoder.embed_utterance(wav) for wav in wavs]))
    print(f"wrote {FIXTURE}")


def _compare_eval(model_dir: Path) -> None:
    from resemblyzer import VoiceEncoder as TorchEncoder
    from resemblyzer import preprocess_wav

    from speaker.encoder.voice import VoiceEncoder
    from tests.speaker.eval_data import diarization_clips
    torch_encoder, onnx_encoder = TorchEncoder("cpu", verbose=False), VoiceEncoder(model_dir)
    for clip in diarization_clips():
        wav = preprocess_wav(clip.wav_path())  # loudness + resemblyzer's own silence trimming
        ours, theirs = onnx_encoder.embed_utterance(wav), torch_encoder.embed_utterance(wav)
        print(f"{clip.id}\tcosine {float(ours @ theirs):.6f}\t{len(wav) / SAMPLE_RATE:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--eval", action="store_true", help="also compare on every DIARIZATION.tsv clip")
    args = parser.parse_args()
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    _write_fixture()
    if args.eval:
        _compare_eval(args.model)


if __name__ == "__main__":
    main()
