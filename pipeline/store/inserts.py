"""The two insert calls of the :class:`~pipeline.store.Store` port, shared by every adapter.

Each adapter plans the insert with :mod:`pipeline.store.codec` the same way and only differs in
how the planned payload reaches the engine (:meth:`PlannedInserts._insert`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.store import codec


class PlannedInserts:
    #: the adapter's engine label, as in StoreError.engine
    ENGINE: str = "?"

    def insert_rows(
        self,
        table: str,
        rows: Sequence[Mapping[str, Any]],
        *,
        dedup_token: str | None = None,
    ) -> None:
        if rows:
            self._insert(table, codec.plan_insert(table, rows, dedup_token, engine=self.ENGINE))

    def insert_columns(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        dedup_token: str | None = None,
    ) -> None:
        if rows:
            plan = codec.plan_columns_insert(table, columns, rows, dedup_token, engine=self.ENGINE)
            self._insert(table, plan)

    def _insert(self, table: str, plan: codec.InsertPlan) -> None:
        raise NotImplementedError
