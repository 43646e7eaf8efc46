"""Whisper on onnxruntime, as a library: features, tokenizer, decoding, the engine.

Knows nothing of the bus or the config (a test holds it to that): the asr stage and
`voxbus transcribe` both drive it through `engine.WhisperModel`.
"""
