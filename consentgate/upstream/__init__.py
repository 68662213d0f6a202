"""The HTTP/1.1 client to the upstream: asyncio and llhttp, no aiohttp (by contract).

``upstream_client.py``'s ``Upstream`` is the one object every request to the upstream
goes through (base URL, pool, timeouts), opened once per process. ``pool.py`` keeps
connections alive and hands them out, ``connection.py`` frames requests and parses
responses strictly (docs/references.md, "Proxy correctness"), ``responses.py`` is a
response and its back-pressured body, ``failures.py`` the errors; ``shares.py`` is each
client address's share of the pool; ``bounded_read.py`` reads a whole body up to a limit.
"""
