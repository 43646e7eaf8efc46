"""Translate bench: espeak-ng German and French sentences through Whisper base, task=translate.

    .venv/bin/python -m tests.bench.translate_bench [--models-dir DIR] [--check]

Prints detected language and probability, the transcription and the English
translation of each sentence, for voxbus and faster-whisper on the same weights.
--check exits 1 when voxbus's German translation lacks the English key words.
Synthetic speech: espeak-ng's French is hard to understand even for people, so
German is the checked language.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.bench.common import print_table, write_json
from tests.bench.quality_bench import faster_whisper_dir

SENTENCES = {
    "de": ("Guten Morgen. Das Wetter ist heute sehr schön, und wir gehen mit den Kindern in den Park.",
           ("morning", "park")),
    "fr": ("Bonjour à tous. Aujourd'hui il fait très beau, et nous allons nous promener dans le parc.", ()),
}


def speak(language: str, text: str, out: Path) -> Path:
    subprocess.run(["espeak-ng", "-v", language, "-s", "140", "-w", str(out), text], check=True, capture_output=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="translate_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default=str(Path("~/.local/share/voxbus/models").expanduser()))
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    from faster_whisper import WhisperModel as FasterWhisper

    from asr.audio_file import load_audio
    from asr.engine import WhisperModel
    from asr.model_build import ensure_model

    models_dir = Path(args.models_dir)
    vox = WhisperModel(ensure_model("base", models_dir / "base-int8", "int8"), threads=2)
    fw = FasterWhisper(faster_whisper_dir("base", models_dir), device="cpu", compute_type="int8", cpu_threads=2)
    rows, failures = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for language, (text, key_words) in SENTENCES.items():
            audio = load_audio(speak(language, text, Path(tmp) / f"{language}.wav"))
            heard = vox.transcribe(audio)
            english = vox.transcribe(audio, task="translate")
            fw_segments, fw_info = fw.transcribe(audio, task="translate", vad_filter=False)
            fw_english = " ".join(s.text.strip() for s in fw_segments)
            rows.append({"spoken": language, "vox language": heard.language,
                         "vox prob": round(heard.language_prob or 0.0, 3), "vox transcript": heard.text,
                         "vox translation": english.text, "fw language": fw_info.language,
                         "fw translation": fw_english})
            missing = [w for w in key_words if w not in english.text.lower()]
            if missing:
                failures.append(f"{language}: translation {english.text!r} lacks {missing}")
    for row in rows:
        print("\n".join(f"{k:>16}: {v}" for k, v in row.items()) + "\n")
    print_table("Translate (base int8)", [{k: r[k] for k in ("spoken", "vox language", "vox prob")} for r in rows])
    for failure in failures:
        print(f"CHECK FAILED: {failure}")
    write_json("translate_bench", {"rows": rows, "failures": failures})
    return 1 if args.check and failures else 0


if __name__ == "__main__":
    sys.exit(main())
