"""Kafka for tests, picked in this order (the first that applies wins):

1. ``PIPELINE_KAFKA_BOOTSTRAP_SERVERS`` set: use that broker as it is.
2. A Docker engine answers: a KRaft broker from testcontainers (Confluent Platform 8 = Kafka 4.0).
3. Otherwise the project's own launcher (real Apache Kafka from Maven Central), the same path CI
   and ``python -m pipeline dev`` use. A broker the fixture started is stopped at session end;
   one that was already running is left alone.

Tests isolate themselves by topic and group names (``unique_name``), never by restarting Kafka.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from pipeline.devstack.kafka_launcher import KafkaLauncher
from pipeline.settings import Settings


def _docker_engine_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    settings = Settings()
    if settings.kafka_bootstrap_servers:
        yield settings.kafka_bootstrap_servers
        return
    if _docker_engine_available():
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer("confluentinc/cp-kafka:8.0.0").with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    launcher = KafkaLauncher(settings.cache_dir, settings.kafka_version, say=print)
    info = launcher.start()
    yield info.bootstrap_servers
    if not info.reused:
        launcher.stop()


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A topic/group-safe name unique to this test run."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40]
    return f"t-{base}-{uuid.uuid4().hex[:8]}"
