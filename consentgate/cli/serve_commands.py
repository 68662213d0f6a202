"""``consentgate serve`` and ``consentgate demo``: the commands that run a gate.

The server and the demo are imported inside the handlers, so ``--version`` and
``check-config`` stay light (they import aiohttp).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import functools
import sys
from pathlib import Path

from consentgate.cli.conventions import EXIT_FAILURE, EXIT_OK, Commands, add_config_argument, error
from consentgate.config.loading import load_config


def _cmd_serve(args: argparse.Namespace) -> int:
    # SIGHUP re-reads the file with this same loader (environment and secret files
    # included); absolute, and a picklable partial, so a spawned worker can use it too.
    source = functools.partial(load_config, Path(args.config).absolute())
    config = source()
    if args.create_store:
        from consentgate.store.opening import create_store

        done = asyncio.run(create_store(config.store, config.keys.dir, must_be_new=False))
        print(done, file=sys.stderr)
    if config.server.workers > 1:
        from consentgate.serving.workers import run_workers

        return run_workers(config, source)
    # Imported here, not above: it imports aiohttp and the web layer, which the
    # supervisor of several workers never uses (each worker imports it itself).
    from consentgate.serving.server import serve

    asyncio.run(serve(config, source=source))
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from consentgate.demo import DemoStack, demo_main

    def ready(stack: DemoStack) -> None:
        print(
            "\nconsentgate demo is running (everything on 127.0.0.1; data in "
            f"{stack.data_dir})\n\n"
            f"  Open the demo MCP client:  {stack.client_url}/\n"
            f"  The gate:                  {stack.gate_url}  "
            f"(in front of the demo proxy at {stack.proxy_url})\n\n"
            "Press Ctrl-C to stop; the temporary data is removed.\n",
            flush=True,
        )

    try:
        asyncio.run(demo_main(args.port, ready))
    except OSError as exc:
        hint = (
            "; choose another with --port N (0: any free port)"
            if exc.errno == errno.EADDRINUSE
            else ""
        )
        error(f"cannot start the demo on port {args.port}: {exc.strerror or exc}{hint}")
        return EXIT_FAILURE
    print("demo stopped; temporary data removed", flush=True)
    return EXIT_OK


def add_serve(commands: Commands) -> None:
    serve = commands.add_parser("serve", help="run the gate")
    add_config_argument(serve)
    serve.add_argument(
        "--create-store",
        action="store_true",
        help="create an empty store if it is missing, even where one existed "
        "(otherwise that is an error: restore the backup)",
    )
    serve.set_defaults(handler=_cmd_serve)


def add_demo(commands: Commands) -> None:
    demo = commands.add_parser(
        "demo", help="run the gate in front of a demo proxy on loopback, to click through"
    )
    demo.add_argument(
        "--port", type=int, default=8080, help="the gate's port on 127.0.0.1 (default 8080)"
    )
    demo.set_defaults(handler=_cmd_demo)
