"""The `voxbus` front door: one console script that hands each subcommand to the CLI of the package that owns it."""
