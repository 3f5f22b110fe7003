"""Process-wide settings of the long-running processes (edge, worker)."""

from __future__ import annotations

import gc

#: young-generation threshold of the cyclic garbage collector in the hot processes
GC_YOUNG_THRESHOLD = 1_000_000


def tune_gc_for_throughput() -> None:
    """Call once start-up is done: freeze what is alive (catalog, modules, caches) out of the
    collector's reach and run the young collection only once 1,000,000 more container objects
    are alive than were freed (Python counts allocations minus deallocations), not every 700.

    The hot paths allocate many short-lived, acyclic objects (freed by reference counting), and
    what stays alive for a while is the work in flight: a worker holds two batches of up to
    20,000 events (~10 containers each: the event dict, row tuples, entries). Every young
    collection walks all of that, and at thresholds below the live set it ran every few
    thousand events. Measured on the worker (300k events in-process, docs/benchmarks.md): the
    default ~9k events/s, 50,000 ~15k (63 collections, 1.5 s), 500,000 ~18k, 1,000,000 ~26k
    (no collection). Memory stays bounded: reference counting frees the acyclic garbage at
    once; cyclic garbage (rare here) waits for at most a million objects.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 100)
