"""Leases: which replica runs each piece of work that other replicas follow, cancel or repair.

Four kinds of work run on one replica and are followed from others (`kind`, `id`, `holder`):
  - `reply`: a session's reply (id: the session, holder: the reply's message id), so that a
    session has one reply in flight across replicas (409 `reply_in_flight`);
  - `stream`: a resumable OpenAI stream or a background response (id and holder: its id);
  - `job`: a fine-tuning job (id and holder: the job id).
Whoever starts the work takes its lease (`Leases.acquire`) before anyone can see it, and lets
go of it (`release`) once the work is stored as ended; meanwhile one keeper task refreshes
every lease this replica holds (`LEASE_S` = 15 s, every 5 s). `cancel` stops the work here, or
asks the holder's replica and waits until it lets go. `gone` is the one rule for a replica that
died: nobody holds the lease any more, so work still stored as unfinished was abandoned and its
reader stores it as interrupted. Memory (`memory.py`, one replica) or Redis (`redis.py`)."""

from __future__ import annotations

from app.leases.keeper import CANCEL_WAIT_S, LEASE_S, Leases, Stop
from app.leases.memory import MemoryLeaseStore
from app.leases.store import CancelRequest, LeaseStore

REPLY = "reply"
STREAM = "stream"
JOB = "job"

__all__ = ["CANCEL_WAIT_S", "JOB", "LEASE_S", "REPLY", "STREAM", "CancelRequest", "LeaseStore",
           "Leases", "MemoryLeaseStore", "Stop"]
