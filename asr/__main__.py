import sys

from asr.main import main

sys.exit(main())
