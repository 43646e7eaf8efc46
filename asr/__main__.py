"""Placeholder until the real asr stage lands: heartbeats ok=false."""
from bus.placeholder import main
raise SystemExit(main("asr"))
