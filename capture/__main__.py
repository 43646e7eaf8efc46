"""python -m capture [--config FILE]: the capture stage."""
import sys

from capture.main import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
