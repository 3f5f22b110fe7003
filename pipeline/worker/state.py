"""The worker's durable dedup state: one RocksDB per events-topic partition, on local disk.

Each partition's database maps a dedup key (:func:`pipeline.metering.dedup.dedup_key`, UTF-8)
to the encoded :class:`~pipeline.metering.dedup.FirstCopy` of the message that won it, plus one
reserved entry: the next offset of the partition's *changelog* that this database has applied
(the changelog is the durable copy in Kafka, see :mod:`pipeline.worker.changelog`). Entries and
that position are written in one RocksDB write batch, so after a crash the database is always
a prefix of the changelog and recovery resumes exactly where it stopped.

Memory stays bounded: RocksDB keeps its memtables and block cache, the rest is on disk.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from rocksdict import Options, Rdict, WriteBatch

#: reserved key: dedup keys start with the tenant's length in digits, never with a NUL byte
_POSITION_KEY = b"\x00changelog-next-offset"


class PartitionState:
    """First copies of one partition, and how far into its changelog they reach."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(path), Options(raw_mode=True))
        #: key -> stored value or None: the database's own ``get`` (hot path: no wrapper call)
        self.get: Callable[[bytes], bytes | None] = self._db.get

    @property
    def changelog_position(self) -> int:
        """The next changelog offset to apply (0 for a new database)."""
        raw = self._db.get(_POSITION_KEY)
        return 0 if raw is None else int.from_bytes(raw, "big")

    def apply(self, entries: Iterable[tuple[bytes, bytes]], changelog_position: int) -> None:
        """Store ``entries`` and the changelog position they reach, atomically."""
        batch = WriteBatch(raw_mode=True)
        for key, value in entries:
            batch.put(key, value)
        batch.put(_POSITION_KEY, changelog_position.to_bytes(8, "big"))
        self._db.write(batch)

    def close(self) -> None:
        self._db.close()


class DedupState:
    """The partitions' databases under ``directory`` (``p<partition>/``), opened on demand."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._open: dict[int, PartitionState] = {}

    def partition(self, partition: int) -> PartitionState:
        state = self._open.get(partition)
        if state is None:
            state = self._open[partition] = PartitionState(self.directory / f"p{partition}")
        return state

    def get(self, partition: int, key: bytes) -> bytes | None:
        return self.partition(partition).get(key)

    def reader(self) -> Callable[[int, bytes], bytes | None]:
        """:meth:`get` for one batch's lookups, without a method call per partition."""
        gets: dict[int, Callable[[bytes], bytes | None]] = {}

        def read(partition: int, key: bytes) -> bytes | None:
            get = gets.get(partition)
            if get is None:
                get = gets[partition] = self.partition(partition).get
            return get(key)

        return read

    @property
    def open_partitions(self) -> list[int]:
        return sorted(self._open)

    def close(self, partition: int) -> None:
        state = self._open.pop(partition, None)
        if state is not None:
            state.close()

    def reset(self, partition: int) -> None:
        """Delete a partition's database (it will be rebuilt from the whole changelog)."""
        self.close(partition)
        shutil.rmtree(self.directory / f"p{partition}", ignore_errors=True)

    def close_all(self) -> None:
        for partition in list(self._open):
            self.close(partition)
