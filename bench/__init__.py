"""Benchmarks: ``python -m bench.run`` compares the gate with direct access, nginx and a
minimal aiohttp proxy (see docs/performance.md)."""
