import sys

from store.main import main

sys.exit(main())
