"""`python -m gateway`: uvicorn serving the gateway app on gateway.host:port."""
import sys

from gateway.server import main

sys.exit(main())
