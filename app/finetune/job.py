"""A fine-tuning job as OpenAI's API shows it: the request (declared, checked), the job object
and its events. Pure: `manager.py` decides when a job changes, this only says what it looks like.

The fine-tuned model is named `ft:{base}:{suffix}:{short id}` as OpenAI's are (its org part is
the suffix here), the short id being the job id without `ftjob-`; no suffix leaves its part
empty: `ft:{base}::{short id}`."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import Field, PlainValidator, StringConstraints

from app.ids import new_id
from app.validation import StrictModel

STATUSES = ("validating_files", "queued", "running", "succeeded", "failed", "cancelled")
FINAL = frozenset({"succeeded", "failed", "cancelled"})
DEFAULT_EPOCHS = 3
DEFAULT_BATCH_SIZE = 1
BASE_LEARNING_RATE = 1e-3  # LoRA r=8 on q_proj/v_proj learns a fixed answer in ~30 steps

Auto = Literal["auto"]


def _auto_or(kind: type[int] | type[float], low: float, high: float) -> PlainValidator:
    """"auto" or a number in (low, high] for floats, [low, high] for integers. One validator,
    not a union: a union's branch would show in the error's `param`."""
    what = "an integer" if kind is int else "a number"

    def check(value: Any) -> Any:
        if value == "auto":
            return value
        numeric = (int, float) if kind is float else (int,)
        inside = isinstance(value, numeric) and not isinstance(value, bool) and (
            low <= value <= high if kind is int else low < value <= high)
        if not inside:
            bounds = f"from {low:g} to {high:g}" if kind is int else f"over {low:g}, at most {high:g}"
            raise ValueError(f'must be "auto" or {what} {bounds}')
        return value

    return PlainValidator(check)


class Hyperparameters(StrictModel):
    n_epochs: Annotated[int | Auto, _auto_or(int, 1, 50)] = "auto"
    learning_rate_multiplier: Annotated[float | Auto, _auto_or(float, 0, 10)] = "auto"
    batch_size: Annotated[int | Auto, _auto_or(int, 1, 64)] = "auto"

    def resolved(self) -> dict[str, Any]:
        """The values the job trains with ("auto" made concrete), as the job object shows."""
        return {"n_epochs": DEFAULT_EPOCHS if self.n_epochs == "auto" else self.n_epochs,
                "learning_rate_multiplier": 1.0 if self.learning_rate_multiplier == "auto"
                else float(self.learning_rate_multiplier),
                "batch_size": DEFAULT_BATCH_SIZE if self.batch_size == "auto" else self.batch_size}


Suffix = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class JobRequest(StrictModel):
    """POST /v1/fine_tuning/jobs (and /v1/fine-tune)."""

    training_file: str
    model: str
    suffix: Suffix | None = None
    hyperparameters: Hyperparameters = Hyperparameters()
    validation_file: str | None = None
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    metadata: dict[str, Annotated[str, Field(max_length=512)]] | None = Field(
        default=None, max_length=16)


def new_job_id() -> str:
    return new_id("ftjob-")


def fine_tuned_name(base: str, suffix: str | None, job_id: str) -> str:
    return f"ft:{base}:{suffix or ''}:{job_id.removeprefix('ftjob-')}"


def new_job(req: JobRequest, base: str, owner: str | None) -> dict[str, Any]:
    """The job object as created: `validating_files`, nothing trained yet."""
    job_id = new_job_id()
    hyper = req.hyperparameters.resolved()
    return {
        "id": job_id, "object": "fine_tuning.job", "model": base,
        "created_at": int(time.time()), "finished_at": None, "fine_tuned_model": None,
        "organization_id": owner or "streamchat", "result_files": [],
        "status": "validating_files", "training_file": req.training_file,
        "validation_file": req.validation_file, "hyperparameters": hyper,
        "trained_tokens": None, "error": None,
        "seed": req.seed if req.seed is not None else uuid.uuid4().int % 2**31,
        "estimated_finish": None, "integrations": [], "metadata": req.metadata,
        "user_provided_suffix": req.suffix,
        "method": {"type": "supervised", "supervised": {"hyperparameters": hyper}},
    }


def error(code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param}


def event(message: str, *, level: str = "info", data: dict[str, Any] | None = None,
          kind: str = "message") -> dict[str, Any]:
    """A `fine_tuning.job.event`: a `message`, or `metrics` with a training step's figures."""
    return {"id": new_id("ftevent-"), "object": "fine_tuning.job.event",
            "created_at": int(time.time()), "level": level, "message": message,
            "data": data or {}, "type": kind}


def metrics_event(step: dict[str, Any]) -> dict[str, Any]:
    """A worker's step line as an event: step, total_steps, loss, tokens_per_s, eta_s."""
    data = {k: step.get(k) for k in ("step", "total_steps", "loss", "tokens_per_s", "eta_s")}
    return event(f"Step {data['step']}/{data['total_steps']}: training loss={data['loss']:.4f}",
                 data=data, kind="metrics")
