"""Whom the gate runs as: a WARNING at start when it is root.

The gate needs no privilege: its store, keys and token are its own user's files, and
a port below 1024 is one capability (``CAP_NET_BIND_SERVICE``). As root, a flaw in it
or in a library it uses is a flaw of the whole machine; the systemd unit runs it as a
dynamic user (docs/deploy.md). Light on purpose: the supervisor of several workers
imports it without the web layer.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("consentgate")


def root_warning(uid: int) -> str | None:
    """The WARNING for a gate running as ``uid`` 0 (root), else None."""
    if uid != 0:
        return None
    return (
        "running as root: the gate needs no privileges; run it as its own user (the "
        "systemd unit's DynamicUser=, docs/deploy.md), with CAP_NET_BIND_SERVICE if "
        "server.listen has a port below 1024"
    )


def warn_if_root() -> None:
    """Log :func:`root_warning` for this process's effective user, once per start."""
    warning = root_warning(os.geteuid())
    if warning is not None:
        log.warning(warning)
