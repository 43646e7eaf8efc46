"""The capture stage: ALSA, ffmpeg and file sources → 16 kHz mono int16 frames on audio/<stream>/."""
