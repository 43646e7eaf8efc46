"""The voxbus bus: message schemas, socket helpers, the XSUB/XPUB proxy, health, record/replay, CLI."""
