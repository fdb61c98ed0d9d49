"""The fine-tuning job manager a request works with, served only with
STREAMCHAT_FINE_TUNING=true: both the Files and the jobs routes ask it through `enabled`."""

from __future__ import annotations

from starlette.requests import Request

from app.api.http.state import services
from app.errors import NotFound
from app.finetune.manager import JobManager


def enabled(request: Request) -> JobManager:
    """The job manager, or 404 when fine-tuning is off."""
    manager = services(request).fine_tuning
    if manager is None:
        raise NotFound(f"fine-tuning is off on this server ({request.url.path}): set "
                       "STREAMCHAT_FINE_TUNING=true to serve /v1/files and /v1/fine_tuning/jobs",
                       code="fine_tuning_disabled")
    return manager
