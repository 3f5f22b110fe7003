"""Embedded ClickHouse (chdb) adapter: the default store when no server URL is configured.

chdb runs the ClickHouse engine inside this process. Its rules shape this module:

* One engine per process, bound to one data directory. Opening the same directory again in
  this process shares the engine (reference-counted here); opening a different directory while
  one is open is refused with a :class:`StoreError`. Tests therefore use one store per test
  process and isolate tests by database name.
* One process per data directory: the engine takes an exclusive ``flock`` on
  ``<data_dir>/status``. A second process fails; we say which process holds it and what to do.
* Calls block. A streaming insert occupies the chdb connection, so every call is serialized by
  a lock; asyncio callers run calls in a thread executor.

Result-format settings (:data:`pipeline.store.codec.RESULT_SETTINGS`) are applied once to the
session with ``SET``; insert settings go into each ``INSERT``'s SETTINGS clause.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import StoreError
from pipeline.store import codec
from pipeline.store.inserts import PlannedInserts

ENGINE = "chdb"
SERVER_URL_ENV = "PIPELINE_CLICKHOUSE_URL"


@dataclass
class _Engine:
    """The process's one chdb session, its data directory, and who is using it."""

    path: Path
    session: Any
    references: int = 1
    calls: threading.Lock = field(default_factory=threading.Lock)


_registry_lock = threading.Lock()
_engine: _Engine | None = None


def lock_holder(path: Path) -> int | None:
    """PID of the process holding the engine lock on ``path/status``; 0 if unknown; None if free.

    Only meaningful when this process does not hold the directory itself.
    """
    status = path / "status"
    try:
        descriptor = os.open(status, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            return _status_pid(status)
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return None
    finally:
        os.close(descriptor)


def _status_pid(status: Path) -> int:
    try:
        for line in status.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "PID" and value.strip().isdigit():
                return int(value.strip())
    except OSError:
        pass
    return 0


def _held_elsewhere_error(path: Path, pid: int) -> StoreError:
    who = f"process {pid}" if pid else "another process"
    return StoreError(
        f"the embedded ClickHouse store at {path} is held by {who} (it has the lock on "
        f"{path / 'status'}); only one process can open an embedded data directory. Stop that "
        f"process, or run a ClickHouse server and set {SERVER_URL_ENV}",
        engine=ENGINE,
        path=str(path),
        holder_pid=pid or None,
        sql=None,
    )


def _start_engine(path: Path) -> _Engine:
    import chdb.session  # importing chdb costs ~1 s and ~300 MB: only when used

    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreError(
            f"cannot create the embedded ClickHouse data directory {path}: {error}",
            engine=ENGINE,
            path=str(path),
            sql=None,
        ) from error
    session_type: Any = chdb.session.Session  # chdb is untyped
    try:
        session: Any = session_type(str(path))
    except RuntimeError as error:
        holder = lock_holder(path)
        if holder is not None:
            raise _held_elsewhere_error(path, holder) from error
        raise StoreError(
            f"cannot start the embedded ClickHouse engine on {path}: {error}",
            engine=ENGINE,
            path=str(path),
            sql=None,
        ) from error
    engine = _Engine(path=path, session=session)
    for name, value in codec.RESULT_SETTINGS.items():
        statement = f"SET {codec.settings_clause({name: value})}"
        try:
            session.query(statement)
        except RuntimeError as error:
            session.close()
            raise StoreError(
                f"embedded ClickHouse refused setting {name}: {error}",
                engine=ENGINE,
                sql=statement,
            ) from error
    return engine


class EmbeddedStore(PlannedInserts):
    """A :class:`pipeline.store.Store` on the process's chdb engine."""

    ENGINE = ENGINE

    @property
    def engine(self) -> str:
        return ENGINE

    def __init__(self, shared: _Engine) -> None:
        self._shared: _Engine | None = shared
        self.path = shared.path

    @classmethod
    def open(cls, data_dir: Path) -> EmbeddedStore:
        """Open (or join this process's already open) engine on ``data_dir``."""
        global _engine
        path = Path(os.path.realpath(data_dir))
        with _registry_lock:
            if _engine is not None:
                if _engine.path != path:
                    raise StoreError(
                        f"this process already has the embedded ClickHouse store open at "
                        f"{_engine.path}; chdb can serve one data directory per process, so "
                        f"{path} cannot be opened as well. Close the other store first, or use "
                        "one directory (separate data by database name)",
                        engine=ENGINE,
                        path=str(path),
                        open_path=str(_engine.path),
                        sql=None,
                    )
                _engine.references += 1
                return cls(_engine)
            _engine = _start_engine(path)
            return cls(_engine)

    @contextmanager
    def _session(self, sql: str) -> Iterator[Any]:
        shared = self._shared
        if shared is None:
            raise StoreError(
                f"the embedded ClickHouse store at {self.path} is closed",
                engine=ENGINE,
                sql=codec.excerpt(sql),
            )
        with shared.calls:
            try:
                yield shared.session
            except StoreError:
                raise
            except Exception as error:
                raise StoreError(
                    f"embedded ClickHouse (chdb) failed: {error}",
                    engine=ENGINE,
                    sql=codec.excerpt(sql),
                ) from error

    def command(self, sql: str) -> None:
        with self._session(sql) as session:
            session.query(sql)

    def query(self, sql: str, params: Mapping[str, object] | None = None) -> list[dict[str, Any]]:
        bound = codec.bind_params(params, codec.param_text, sql=sql, engine=ENGINE)
        with self._session(sql) as session:
            result = session.query(sql, codec.RESULT_FORMAT, params=bound)
            return codec.decode_result(result.bytes())

    def _insert(self, table: str, plan: codec.InsertPlan) -> None:
        with self._session(plan.statement) as session:
            inserter = session.send_insert(plan.statement, plan.format)
            try:
                inserter.append(plan.payload)
                inserter.finish()
            except BaseException:
                inserter.cancel()
                raise

    def close(self) -> None:
        global _engine
        with _registry_lock:
            shared, self._shared = self._shared, None
            if shared is None:
                return
            shared.references -= 1
            if shared.references == 0:
                with shared.calls:
                    shared.session.close()
                if _engine is shared:
                    _engine = None
