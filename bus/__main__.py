"""`python -m bus`: the XSUB/XPUB bus process (see bus/proxy.py)."""
import sys

from bus.proxy import main

sys.exit(main())
