"""Speech recognition stage: Whisper on onnxruntime."""
