"""Error types shared by the pure modules and the command line."""

from __future__ import annotations


class StartupError(Exception):
    """The service cannot start (port in use, unusable store or key directory).

    The message is one complete sentence meant for the operator; the CLI prints it
    as a single line without a traceback.
    """
