"""The model names this service answers to: the engine's served name plus the configured
aliases. The one owner of "is this a model we serve?", for the OpenAI API (`model` of each
request, `GET /v1/models`) and for sessions (their `model`). Every name maps to the engine's
own weights today; a name that selects other weights (a LoRA adapter) belongs here too."""

from __future__ import annotations

from collections.abc import Sequence

from app.engine.base import Engine
from app.errors import NotFound


class ServedModels:
    def __init__(self, engine: Engine, aliases: Sequence[str] = ()) -> None:
        self.engine = engine
        self.aliases = tuple(aliases)

    @property
    def base(self) -> str:
        """The engine's served name: the model of a request or session that names none."""
        return self.engine.model_name  # read each time: the engine names itself once started

    def names(self) -> list[str]:
        """Every name served, the base model's first."""
        return [self.base, *(alias for alias in self.aliases if alias != self.base)]

    def resolve(self, name: str | None) -> str:
        """The served model called `name` (the base model when None), or NotFound
        `model_not_found` naming the `model` param."""
        if name is None:
            return self.base
        if name != self.base and name not in self.aliases:
            raise NotFound(f"The model '{name}' does not exist; this server serves "
                           f"{', '.join(repr(n) for n in self.names())}", param="model",
                           code="model_not_found")
        return name
