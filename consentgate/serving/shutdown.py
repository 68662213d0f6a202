"""Stopping within ``server.shutdown_grace``, counted from the signal to the exit.

aiohttp's ``AppRunner.cleanup`` waits its ``shutdown_timeout`` for handlers, then
cancels them and waits the timeout again: given 8 s it took up to 17 s.
So the gate drains itself first:

1. the listening sockets close (no new connections) and idle keep-alive
   connections are closed;
2. requests in flight may finish until :data:`CUT_RESERVE` seconds before the end
   of the grace;
3. then every open stream is cut (:meth:`~consentgate.web.guards.inflight.InFlight.cut_streams`):
   it ends with its framing intact where it has one, and one log line each;
4. what is left gets aiohttp's short :data:`ABANDON_TIMEOUT`, and the cleanup
   contexts close the store and the upstream pool.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from consentgate.web.appkeys import IN_FLIGHT

log = logging.getLogger("consentgate")

#: Seconds of the grace kept for cutting streams, abandoning handlers and closing.
CUT_RESERVE = 0.3
#: aiohttp's own shutdown timeout, once the gate has drained: it waits this long,
#: cancels what is left and waits this long again.
ABANDON_TIMEOUT = 0.1


async def shut_down(runner: web.AppRunner, app: web.Application, grace: float) -> None:
    """Stop serving within ``grace`` seconds from now, then clean up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    in_flight = app[IN_FLIGHT]
    in_flight.stopping = True
    for site in list(runner.sites):
        await site.stop()
    if runner.server is not None:
        runner.server.pre_shutdown()  # idle keep-alive connections close now
    if not await in_flight.wait_idle(deadline - CUT_RESERVE - loop.time()):
        cut = in_flight.cut_streams()
        log.info(
            "shutdown grace spent",
            extra={"fields": {"in_flight": in_flight.requests, "streams_cut": cut}},
        )
        await in_flight.wait_idle(deadline - CUT_RESERVE / 2 - loop.time())
    await runner.cleanup()
