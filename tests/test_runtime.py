"""pipeline.runtime: the hot processes' collector settings."""

from __future__ import annotations

import gc

from pipeline.runtime import GC_YOUNG_THRESHOLD, tune_gc_for_throughput


def test_tuning_freezes_start_up_objects_and_raises_the_young_threshold() -> None:
    before = gc.get_threshold()
    try:
        tune_gc_for_throughput()
        assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
