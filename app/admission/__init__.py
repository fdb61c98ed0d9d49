"""Admission control: the gate in front of the engine (`gate.py`), its fair queue
(`fair_queue.py`), the pacing of prompts into the engine (`pacing.py`), the moment heavier users
wait for one who just finished (`anticipation.py`) and the ticket that holds one generation's
place (`ticket.py`)."""

from app.admission.gate import Admission
from app.admission.pacing import PACING_ROUNDS
from app.admission.ticket import BACKGROUND_PRIORITY, OnPosition, Ticket

__all__ = ["BACKGROUND_PRIORITY", "PACING_ROUNDS", "Admission", "OnPosition", "Ticket"]
