"""How a request may arrive and how it ends: bodies read within a bound, requests aiohttp
cannot parse, requests that end before their response, and what is in flight when a
shutdown comes.
"""
