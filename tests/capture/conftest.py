"""Fixtures of the vad and capture tests."""
from tests.kit import close_bus_clients  # noqa: F401  (autouse: no BusClient outlives its test)
