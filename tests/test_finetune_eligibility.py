"""What a fine-tuning job may ask for (app/finetune/eligibility.py): the base model (or an
alias of it), and the caller's own uploaded files."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import InvalidRequest, NotFound
from app.finetune.eligibility import base_model_for
from app.finetune.files import FileStore
from app.finetune.job import JobRequest
from app.records import MemoryRecords
from app.served_models import ServedModels
from tests.fakes import ScriptedEngine

LINE = b'{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}'


@pytest.fixture
async def uploaded(tmp_path: Path) -> tuple[FileStore, str]:
    files = FileStore(MemoryRecords(100, 3600.0), tmp_path, 1 << 20)
    created = await files.create("data.jsonl", "fine-tune", LINE + b"\n", "alice")
    return files, created["id"]


@pytest.mark.parametrize("model", ["scripted", "alias"])
async def test_the_base_model_or_an_alias_with_its_own_file(
        uploaded: tuple[FileStore, str], model: str) -> None:
    files, file_id = uploaded
    models = ServedModels(ScriptedEngine(), ["alias"])
    req = JobRequest(training_file=file_id, model=model)
    assert await base_model_for(req, "alice", models, files) == "scripted"


async def test_refusals_name_the_field(uploaded: tuple[FileStore, str]) -> None:
    files, file_id = uploaded
    models = ServedModels(ScriptedEngine())
    with pytest.raises(NotFound):  # a model not served at all
        await base_model_for(JobRequest(training_file=file_id, model="other"), "alice",
                             models, files)
    with pytest.raises(InvalidRequest) as other_key:
        await base_model_for(JobRequest(training_file=file_id, model="scripted"), "bob",
                             models, files)
    assert other_key.value.param == "training_file"
    with pytest.raises(InvalidRequest) as missing:
        await base_model_for(JobRequest(training_file=file_id, model="scripted",
                                        validation_file="file-nope"), "alice", models, files)
    assert (missing.value.param, missing.value.code) == ("validation_file",
                                                         "invalid_validation_file")
