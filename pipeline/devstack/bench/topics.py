"""The bench's own Kafka topics: every bench names its topics under one prefix and drops them."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient


async def delete_topics(
    bootstrap: str, *, names: tuple[str, ...] = (), prefix: str = ""
) -> list[str]:
    """Delete the existing topics among ``names`` and those starting with ``prefix`` (if given)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = await admin.list_topics()
        doomed = sorted(t for t in existing if t in names or (prefix and t.startswith(prefix)))
        if doomed:
            await admin.delete_topics(doomed)
        return doomed
    finally:
        await admin.close()
