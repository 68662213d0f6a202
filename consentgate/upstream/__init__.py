"""The HTTP/1.1 client to the upstream: asyncio and llhttp, no aiohttp (by contract).

``pool.py`` frames requests, parses responses strictly and keeps connections alive
(docs/references.md, "Proxy correctness"); ``shares.py`` is each client address's
share of the pool. The web layer's ``Upstream`` (``upstream/upstream_client.py``) opens
one pool per process.
"""
