"""Translate bench: espeak-ng German and French sentences through Whisper base, task=translate.

    .venv/bin/python -m tests.bench.translate_bench [--models-dir DIR] [--check]

Prints detected language and probability, the transcription and the English
translation of each sentence, for voxbus and faster-whisper on the same weights,
and how many of each sentence's English key words each translation has.
--check exits 1 when a voxbus translation is empty or keeps a word of the spoken
sentence (the speech was transcribed, not translated).

Synthetic speech is hard for base: on these sentences even fp32 base and
faster-whisper's int8 translate only some of the content (measured: no build gets
sentence 5's "station"), and which sentences come out well moves with numerics.
So the check asks for English, not for a given rendering; the key-word counts show
how close the content comes, side by side with faster-whisper.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.bench.common import print_table, write_json
from tests.bench.quality_bench import faster_whisper_dir

# (language, sentence, English key words a faithful translation has)
SENTENCES = (
    ("de", "Guten Morgen. Das Wetter ist heute sehr schön, und wir gehen mit den Kindern in den Park.",
     ("morning", "weather", "children", "park")),
    ("de", "Ich habe gestern ein neues Buch gekauft, aber ich habe noch keine Zeit zum Lesen gehabt.",
     ("bought", "book", "time", "read")),
    ("de", "Der Zug nach Berlin fährt um acht Uhr ab und kommt am Nachmittag an.", ("train", "eight", "afternoon")),
    ("de", "Meine Schwester arbeitet in einem großen Krankenhaus in der Stadt.", ("sister", "hospital", "city")),
    ("de", "Können Sie mir bitte sagen, wo der nächste Bahnhof ist?", ("where", "station")),
    ("de", "Wir trinken jeden Abend eine Tasse Tee und hören Musik.", ("tea", "music")),
    ("fr", "Bonjour à tous. Aujourd'hui il fait très beau, et nous allons nous promener dans le parc.",
     ("today", "park")),
)
# Words of the spoken sentences that an English translation may keep (names, shared spellings).
SHARED_WORDS = {"park", "berlin", "parc"}


def speak(language: str, text: str, out: Path) -> Path:
    subprocess.run(["espeak-ng", "-v", language, "-s", "140", "-w", str(out), text], check=True, capture_output=True)
    return out


def words(text: str) -> list[str]:
    return re.findall(r"[^\W\d_]+", text.lower())


def untranslated(spoken: str, translation: str) -> list[str]:
    """Words of four or more letters of the spoken sentence that the translation repeats."""
    kept = set(words(translation))
    return sorted({w for w in words(spoken) if len(w) > 3 and w not in SHARED_WORDS and w in kept})


def key_words_found(key_words: tuple[str, ...], translation: str) -> int:
    return sum(1 for w in key_words if w in words(translation))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="translate_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default=str(Path("~/.local/share/voxbus/models").expanduser()))
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    from faster_whisper import WhisperModel as FasterWhisper

    from asr.whisper.audio import load_audio
    from asr.whisper.engine import WhisperModel
    from asr.build.builder import ensure_model

    models_dir = Path(args.models_dir)
    vox = WhisperModel(ensure_model("base", models_dir / "base-int8", "int8"), threads=2)
    fw = FasterWhisper(faster_whisper_dir("base", models_dir), device="cpu", compute_type="int8", cpu_threads=2)
    rows, failures, found = [], [], {"vox": 0, "fw": 0}
    with tempfile.TemporaryDirectory() as tmp:
        for index, (language, text, key_words) in enumerate(SENTENCES, 1):
            audio = load_audio(speak(language, text, Path(tmp) / f"{index}.wav"))
            heard = vox.transcribe(audio)
            english = vox.transcribe(audio, task="translate")
            fw_segments, fw_info = fw.transcribe(audio, task="translate", vad_filter=False)
            fw_english = " ".join(s.text.strip() for s in fw_segments)
            vox_found, fw_found = key_words_found(key_words, english.text), key_words_found(key_words, fw_english)
            found["vox"] += vox_found
            found["fw"] += fw_found
            rows.append({"#": index, "spoken": language, "vox language": heard.language,
                         "vox prob": round(heard.language_prob or 0.0, 3), "fw language": fw_info.language,
                         "vox key words": f"{vox_found}/{len(key_words)}", "fw key words": f"{fw_found}/{len(key_words)}",
                         "vox transcript": heard.text, "vox translation": english.text,
                         "fw translation": fw_english})
            kept = untranslated(text, english.text)
            if not english.text.strip() or kept:
                failures.append(f"sentence {index} ({language}): translation {english.text!r} "
                                f"{'is empty' if not english.text.strip() else f'keeps {kept}'}")
    for row in rows:
        print("\n".join(f"{k:>16}: {v}" for k, v in row.items() if "trans" in k or k == "#") + "\n")
    print_table("Translate (base int8)", [{k: v for k, v in r.items() if "trans" not in k} for r in rows])
    print(f"\nkey words found: voxbus {found['vox']}, faster-whisper {found['fw']} "
          f"of {sum(len(k) for _, _, k in SENTENCES)}")
    for failure in failures:
        print(f"CHECK FAILED: {failure}")
    write_json("translate_bench", {"rows": rows, "key_words_found": found, "failures": failures})
    return 1 if args.check and failures else 0


if __name__ == "__main__":
    sys.exit(main())
