"""Error types shared by the pure modules and the command line."""

from __future__ import annotations

import errno


class StartupError(Exception):
    """The service cannot start (port in use, unusable store or key directory).

    The message is one complete sentence meant for the operator; the CLI prints it
    as a single line without a traceback.
    """


def cannot_listen(key: str, address: object, exc: OSError) -> StartupError:
    """A listener that cannot bind ``address``, the value of the config key ``key``
    (``server.listen``, ``admin.listen``): one line naming the key, why and the fix."""
    reasons = {
        errno.EADDRINUSE: (
            "the address is already in use",
            f"another process listens there: stop it, or set {key} to a free port",
        ),
        errno.EACCES: (
            "permission denied",
            f"a port below 1024 needs CAP_NET_BIND_SERVICE (the systemd unit's "
            f"AmbientCapabilities=), or set {key} to a port above 1023",
        ),
        errno.EADDRNOTAVAIL: (
            "the address is not one of this machine's",
            f"set {key} to an address this machine has, e.g. 127.0.0.1 or 0.0.0.0",
        ),
    }
    reason, fix = reasons.get(exc.errno or 0, (exc.strerror or str(exc), ""))
    suffix = f" ({fix})" if fix else ""
    return StartupError(f"{key}: cannot listen on {address}: {reason}{suffix}")
