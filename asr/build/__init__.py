"""The model builder: CTranslate2 weights → a voxbus ONNX model directory.

The only code that needs `onnx` (a build-time dependency). It writes the manifest
format that `asr.whisper.manifest` reads.
"""
