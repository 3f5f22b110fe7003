"""The raw record a replay re-processes: ``event_log`` rows of one period, in consumption order.

``event_log`` holds every consumed copy with the canonical record as it was in Kafka
(``payload``). A replay reads the period's rows with ``FINAL`` (a message rewritten after a
worker crash is one row) in chunks, ordered by the table's key (source topic, partition,
offset), with keyset pagination so that each chunk is a bounded query and memory stays
bounded whatever the period's size. Within a partition this is the order the live worker
consumed in, so the first copy of a key is its lowest coordinate, exactly as live and as the
``event_fates`` view decide (copies of one key always share a partition of the one events
topic).

Rows written while the replay runs are included when their coordinates are beyond the
cursor; rows of other periods never are (``event_time`` filter), whatever is being written.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pipeline.billing.common import bind_database
from pipeline.rating import Period
from pipeline.replay.errors import ReplayError
from pipeline.store import Store

DEFAULT_CHUNK_ROWS = 5_000

_COLUMNS = "source_topic, source_partition, source_offset, disposition, payload"
_FIRST_CHUNK = f"""
SELECT {_COLUMNS}
FROM {{database}}.event_log FINAL
WHERE event_time >= {{start:DateTime64(6, 'UTC')}} AND event_time < {{end:DateTime64(6, 'UTC')}}
ORDER BY source_topic, source_partition, source_offset
LIMIT {{limit:UInt32}}
"""
_NEXT_CHUNK = f"""
SELECT {_COLUMNS}
FROM {{database}}.event_log FINAL
WHERE event_time >= {{start:DateTime64(6, 'UTC')}} AND event_time < {{end:DateTime64(6, 'UTC')}}
  AND (source_topic, source_partition, source_offset)
      > ({{topic:String}}, {{partition:UInt32}}, {{offset:UInt64}})
ORDER BY source_topic, source_partition, source_offset
LIMIT {{limit:UInt32}}
"""


@dataclass(frozen=True)
class RawRecord:
    """One consumed copy: its Kafka coordinates, the live worker's disposition, the record."""

    topic: str
    partition: int
    offset: int
    live_disposition: str
    payload: str


def raw_records(
    store: Store, database: str, period: Period, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Iterator[list[RawRecord]]:
    """The period's consumed copies, ``chunk_rows`` at a time, in (topic, partition, offset)
    order. Each chunk is read when the previous one has been handled (a generator)."""
    if chunk_rows < 1:
        raise ReplayError(
            f"replay chunk size must be at least 1 row, got {chunk_rows}", chunk_rows=chunk_rows
        )
    params: dict[str, object] = {"start": period.start, "end": period.end, "limit": chunk_rows}
    sql = bind_database(_FIRST_CHUNK, database)
    while True:
        rows = store.query(sql, params)
        if not rows:
            return
        chunk = [
            RawRecord(
                topic=str(row["source_topic"]),
                partition=int(row["source_partition"]),
                offset=int(row["source_offset"]),
                live_disposition=str(row["disposition"]),
                payload=str(row["payload"]),
            )
            for row in rows
        ]
        yield chunk
        if len(rows) < chunk_rows:
            return
        last = chunk[-1]
        params = {
            **params,
            "topic": last.topic,
            "partition": last.partition,
            "offset": last.offset,
        }
        sql = bind_database(_NEXT_CHUNK, database)
