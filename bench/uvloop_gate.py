"""``python -m bench.uvloop_gate serve --config FILE``: the gate's own command line on uvloop.

Only for ``python -m bench.run --uvloop``: installs uvloop's event loop policy, then
runs :func:`consentgate.cli.main` unchanged. uvloop is not a dependency of the
package (imported by name, so type-checking does not need it either); install it
into the environment to measure it: ``pip install uvloop``.
"""

from __future__ import annotations

import asyncio
import importlib

from consentgate.cli import main

if __name__ == "__main__":
    uvloop = importlib.import_module("uvloop")
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    raise SystemExit(main())
