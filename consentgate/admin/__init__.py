"""The admin listener on ``[admin] listen``: ``/metrics`` and the admin API (the CLI's
``consents`` operations over HTTP, docs/admin-api.md).

Above the web layer: the listener and its handlers use the web layer's app keys, its
runner for requests aiohttp cannot parse, and read bodies with the same bound.
``admin_listener.py`` starts it (bearer token, JSON errors), ``admin_handlers.py``
holds the thin handlers, ``api_parsing.py`` what the API accepts (pure).
"""
