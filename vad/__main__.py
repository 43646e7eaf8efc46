"""python -m vad [--config FILE]: the vad stage."""
import sys

from vad.main import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
