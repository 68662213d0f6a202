"""The cyclic garbage collector's settings once the gate serves.

Everything built before the gate listens (the configuration, the routes, the store's
caches, the keys, the imported modules: hundreds of thousands of objects) lives until
the process ends, yet every full collection walks it again, and the default
generation-0 threshold (700 allocations) starts a young collection every few
requests. :func:`settle_garbage_collector` collects once, moves what survives into
the permanent generation (``gc.freeze``, which exists for long-lived servers:
https://docs.python.org/3/library/gc.html#gc.freeze) and raises the generation-0
threshold so young collections run about once per ``GEN0_THRESHOLD`` allocations.

Nothing is kept that a collection would have freed: the collection before the
freeze frees the garbage of the start-up, and cycles made while serving are still
collected (less often). Objects made later (a reload's configuration) are not
frozen. What it measured on remembered ``/authorize``: docs/performance.md.
"""

from __future__ import annotations

import gc

#: Allocations (minus deallocations) between two young collections. A request to the
#: gate allocates a few thousand objects, nearly all freed by reference counting;
#: docs/performance.md has the measurement behind the figure.
GEN0_THRESHOLD = 50_000


def settle_garbage_collector() -> None:
    """Collect, freeze the survivors, raise the generation-0 threshold (the older
    generations' thresholds stay Python's)."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
