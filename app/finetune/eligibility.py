"""What a fine-tuning job may be asked to do, checked before it is created: only the base
model is fine-tuned (an alias names the same weights; a fine-tuned model is refused), and its
files are the caller's own uploads. Each refusal a 400 naming the field, as OpenAI's."""

from __future__ import annotations

from app.errors import InvalidRequest
from app.finetune.files import FileStore
from app.finetune.job import JobRequest
from app.served_models import ServedModels


async def base_model_for(req: JobRequest, owner: str | None, models: ServedModels,
                         files: FileStore) -> str:
    """The base model's name, which the job records; InvalidRequest for a model that is not
    the base model or a file the caller has not uploaded."""
    model = models.resolve(req.model)
    if model != models.base and model not in models.aliases:
        raise InvalidRequest(f"only the base model ({models.base!r}) can be fine-tuned, "
                             f"got {req.model!r}", param="model", code="model_not_fine_tunable")
    for param, file_id in (("training_file", req.training_file),
                           ("validation_file", req.validation_file)):
        if file_id is not None and not await files.exists(file_id, owner):
            raise InvalidRequest(f"{param} {file_id!r} not found: upload it first (POST "
                                 "/v1/files, purpose fine-tune)", param=param,
                                 code=f"invalid_{param}")
    return models.base
