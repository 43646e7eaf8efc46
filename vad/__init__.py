"""The vad stage: webrtcvad segmentation of live streams and file jobs (ARCHITECTURE.md §5-6)."""
