"""One ``/metrics`` for all the workers of a gate.

With ``[server] workers = N`` every worker is a full gate with its own registry, and
every worker binds the admin listener with ``SO_REUSEPORT``, as it binds the public
one: whichever worker a scrape reaches answers for all of them. It reads its own
registry and asks each other worker over a Unix socket in the supervisor's private
directory (mode 0700: only the gate's own user reaches it, so that socket needs no
token), then adds the figures up, sample by sample:

* counters, histograms (buckets, ``_sum`` and ``_count``) and summaries are summed:
  the gate's requests are the sum of each worker's;
* gauges are summed (requests in flight, streams open, tamper events) except the
  ones that describe the shared store or the build, which every worker reports alike
  (:data:`SAME_IN_EVERY_WORKER`: the largest is kept);
* ``*_created`` timestamps keep the earliest.

Why not prometheus-client's multiprocess mode: it selects a process-global value
class from an environment variable at import, cannot export function gauges, and
would take the per-app registries (and their isolation in tests) away. The cost is
that a worker that restarts starts its counters at zero, so a summed counter goes
down once; Prometheus's ``rate()`` treats that as a counter reset, as it would for a
restarted single-process gate. ``consentgate_metrics_workers{state}`` says how many
workers answered the scrape; one that did not (restarting) is missing from the sums.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Final

import aiohttp
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

#: Gauges every worker reports alike: kept once (the largest), not summed.
SAME_IN_EVERY_WORKER: Final = frozenset({"consentgate_build_info", "consentgate_pending_pages"})
#: The path each worker answers its own figures on, on its Unix socket.
LOCAL_PATH: Final = "/metrics/local"
#: How long a scrape waits for another worker.
PEER_TIMEOUT: Final = 2.0


def socket_path(directory: Path, worker: int) -> Path:
    return directory / f"worker-{worker}.sock"


def merge(expositions: Iterable[str], extra: Sequence[Metric] = ()) -> bytes:
    """The Prometheus text of several workers' expositions added up (module docstring)."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for text in expositions:
        for family in text_string_to_metric_families(text):
            kept = families.setdefault(
                family.name, Metric(family.name, family.documentation, family.type)
            )
            samples = values.setdefault(family.name, {})
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                old = samples.get(key)
                if old is None:
                    samples[key] = sample.value
                elif sample.name.endswith("_created"):
                    samples[key] = min(old, sample.value)
                elif kept.type == "gauge" and family.name in SAME_IN_EVERY_WORKER:
                    samples[key] = max(old, sample.value)
                else:
                    samples[key] = old + sample.value
    for name, family in families.items():
        for (sample_name, labels), value in values[name].items():
            family.add_sample(sample_name, dict(labels), value)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed([*families.values(), *extra]))
    return generate_latest(registry)


class _Fixed(Collector):
    def __init__(self, metrics: Sequence[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self._metrics


def workers_metric(answered: int, missing: int) -> Metric:
    family = Metric(
        "consentgate_metrics_workers", "Workers whose figures this scrape holds, by state.", "gauge"
    )
    family.add_sample("consentgate_metrics_workers", {"state": "answered"}, answered)
    family.add_sample("consentgate_metrics_workers", {"state": "missing"}, missing)
    return family


async def _peer(directory: Path, worker: int) -> str | None:
    """Another worker's own figures, or None when it does not answer in time."""
    connector = aiohttp.UnixConnector(path=str(socket_path(directory, worker)))
    timeout = aiohttp.ClientTimeout(total=PEER_TIMEOUT)
    with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
        async with (
            aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
            session.get(f"http://worker{LOCAL_PATH}") as response,
        ):
            if response.status == 200:
                return await response.text()
    return None


async def gather(own: bytes, directory: Path, me: int, count: int) -> bytes:
    """This worker's exposition ``own`` merged with every other worker's."""
    others = [n for n in range(1, count + 1) if n != me]
    answers = await asyncio.gather(*(_peer(directory, n) for n in others))
    texts = [own.decode("utf-8"), *(a for a in answers if a is not None)]
    return merge(texts, [workers_metric(len(texts), count - len(texts))])
