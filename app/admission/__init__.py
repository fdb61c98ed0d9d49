"""Admission control: the gate in front of the engine (`gate.py`), its fair queue
(`fair_queue.py`) and the ticket that holds one generation's place (`ticket.py`)."""

from app.admission.gate import PACING_ROUNDS, Admission
from app.admission.ticket import BACKGROUND_PRIORITY, OnPosition, Ticket

__all__ = ["BACKGROUND_PRIORITY", "PACING_ROUNDS", "Admission", "OnPosition", "Ticket"]
