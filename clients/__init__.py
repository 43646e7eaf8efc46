"""Clients of a voxbus server that run elsewhere (the desktop app); the server never imports this package."""
