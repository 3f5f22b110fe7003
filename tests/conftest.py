"""Test-run wide settings. Hypothesis: no deadline (a loaded 2-core machine makes timing
flaky; properties are about results, not speed) and the seed of every failure printed, so that
it can be replayed with ``@reproduce_failure`` or ``--hypothesis-seed``."""

from hypothesis import settings

settings.register_profile("pipeline", deadline=None, print_blob=True)
settings.load_profile("pipeline")

pytest_plugins = ["tests.conftest_kafka", "tests.conftest_store"]
