"""The model names served (app/served_models.py): one check for the OpenAI API and sessions."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from app.adapters import Adapters
from app.errors import NotFound
from app.served_models import ServedModels
from tests.fakes import ScriptedEngine


def test_names_are_the_engines_then_the_aliases() -> None:
    models = ServedModels(ScriptedEngine(), ("open-autoglm", "scripted", "other"))
    assert models.names() == ["scripted", "open-autoglm", "other"]
    assert models.base == "scripted"


def test_resolve_a_served_name_or_the_base_model_for_none() -> None:
    models = ServedModels(ScriptedEngine(), ("open-autoglm",))
    assert models.resolve("open-autoglm") == "open-autoglm"
    assert models.resolve("scripted") == "scripted"
    assert models.resolve(None) == "scripted"


def test_an_unknown_name_is_model_not_found_naming_the_served_ones() -> None:
    with pytest.raises(NotFound) as info:
        ServedModels(ScriptedEngine(), ("open-autoglm",)).resolve("gpt-9")
    error = info.value
    assert (error.code, error.param) == ("model_not_found", "model")
    assert "gpt-9" in error.message and "open-autoglm" in error.message


def test_the_engines_name_is_read_when_asked() -> None:
    engine = ScriptedEngine()
    models = ServedModels(engine)
    engine.model_name = "renamed"  # e.g. an engine that names itself once it has started
    assert models.names() == ["renamed"] and models.resolve("renamed") == "renamed"
    with pytest.raises(NotFound):
        models.resolve("scripted")


async def test_adapters_are_listed_in_the_order_any_replica_first_loaded_them(
        tmp_path: Path) -> None:
    engine = ScriptedEngine()
    await engine.start()
    adapters = Adapters(engine, enabled=True, max_rank=16)
    for name, created in (("zeta", 1), ("alpha", 3), ("mid", 2)):  # loaded here in this order
        folder = tmp_path / name
        folder.mkdir()
        (folder / "adapter_config.json").write_text('{"r": 8}')
        await adapters.add(name, folder)
        served = adapters._served[name]
        adapters._served[name] = replace(served, entry=served.entry.model_copy(
            update={"created": created}))  # as the registry says another replica loaded them
    assert ServedModels(engine, (), adapters).names() == ["scripted", "zeta", "mid", "alpha"]
