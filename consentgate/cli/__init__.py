"""The command line: the only package that prints and chooses exit codes.

``consentgate.cli:main`` is the ``consentgate`` script's entry point (and the pyz's,
and ``python -m consentgate``'s); ``build_parser`` lets tests and docs inspect it.
"""

from consentgate.cli.entry import build_parser, main

__all__ = ["build_parser", "main"]
