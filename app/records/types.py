"""The protocol every record store implements (the package docstring says what records are);
apart, so that the stores import it without importing each other."""

from __future__ import annotations

from typing import Any, Protocol

Record = dict[str, Any]


class Records(Protocol):
    async def put(self, kind: str, record_id: str, record: Record) -> None: ...

    async def get(self, kind: str, record_id: str) -> Record | None:
        """The record, or None when unknown or expired."""
        ...

    async def delete(self, kind: str, record_id: str) -> bool: ...

    async def all(self, kind: str) -> list[Record]:
        """Every live record of `kind`, in no particular order."""
        ...

    async def append(self, kind: str, record_id: str, item: Record) -> int:
        """Adds `item` to the record's items; returns how many it has now."""
        ...

    async def items(self, kind: str, record_id: str, start: int = 0) -> list[Record]:
        """The record's items from index `start` on, oldest first."""
        ...
