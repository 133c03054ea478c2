"""The command line: one module per command family, each with its click declaration and body.

`recovery.cli:main` is the console script's entry point."""

from recovery.cli.main import cli, main

__all__ = ["cli", "main"]
