"""The one protocol every lease store implements: memory (one replica) or Redis (several).

A lease says which replica runs a piece of work: `(kind, id)` held by `holder` for `ttl_s`,
unless refreshed. The store also carries cancel requests to whichever replica holds a lease.
`Leases` (keeper.py) is what the rest of the service calls; a store only keeps the facts."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import NamedTuple, Protocol


class CancelRequest(NamedTuple):
    """Stop the work under (kind, id), if `holder` still holds it."""

    kind: str
    id: str
    holder: str


class LeaseStore(Protocol):
    async def acquire(self, kind: str, lease_id: str, holder: str, ttl_s: float) -> str | None:
        """Take the lease for `holder`: None when taken, else who holds it now."""
        ...

    async def refresh(self, kind: str, lease_id: str, holder: str, ttl_s: float) -> bool:
        """Extend the lease by `ttl_s` if `holder` still holds it, or take it back if it ran
        out and nobody took it (the store was unreachable longer than the lease); False when
        another holder has it."""
        ...

    async def release(self, kind: str, lease_id: str, holder: str) -> None:
        """Let go of the lease, if `holder` holds it (never another holder's)."""
        ...

    async def holder(self, kind: str, lease_id: str) -> str | None:
        """Who holds the lease now; None when nobody does (released, or ran out)."""
        ...

    async def request_cancel(self, request: CancelRequest) -> None:
        """Tell every replica (the holder among them) to stop that work."""
        ...

    async def cancel_requests(self) -> AsyncGenerator[CancelRequest, None]:
        """Listen for cancel requests: returns once listening (none asked before is heard)."""
        ...
