import sys

from speaker.main import main

sys.exit(main())
