"""The model names this service answers to: the engine's served name, the configured aliases,
and the LoRA adapters loaded (app/adapters/). The one owner of "is this a model we serve?",
for the OpenAI API (`model` of each request, `GET /v1/models`) and for sessions (their
`model`), and of which weights a name selects: `lora(name)` is the adapter a generation for it
runs with, None for the base weights. With Redis, every replica answers the same: adapters
follow the shared registry, and `created` is when the base model was first served by any."""

from __future__ import annotations

import time
from collections.abc import Sequence

from app.adapters import Adapters
from app.engine.base import Engine, LoraAdapter
from app.errors import NotFound


class ServedModels:
    def __init__(self, engine: Engine, aliases: Sequence[str] = (),
                 adapters: Adapters | None = None) -> None:
        self.engine = engine
        self.aliases = tuple(aliases)
        self.adapters = adapters
        self.created = int(time.time())  # the base model's `created`: app/main.py shares it

    @property
    def base(self) -> str:
        """The engine's served name: the model of a request or session that names none."""
        return self.engine.model_name  # read each time: the engine names itself once started

    def names(self) -> list[str]:
        """Every name served, the base model's first, then aliases, then adapters."""
        return [self.base, *(alias for alias in self.aliases if alias != self.base),
                *self.adapter_names()]

    def adapter_names(self) -> list[str]:
        if self.adapters is None:
            return []
        # In the order they were first loaded anywhere: the same on every replica.
        return [s.adapter.name for s in sorted(self.adapters.all(),
                                               key=lambda s: (s.created, s.adapter.name))]

    def lora(self, name: str | None) -> LoraAdapter | None:
        """The adapter `name` selects; None for the base weights (an alias, or no name)."""
        if name is None or self.adapters is None:
            return None
        return self.adapters.get(name)

    def resolve(self, name: str | None) -> str:
        """The served model called `name` (the base model when None), or NotFound
        `model_not_found` naming the `model` param."""
        if name is None:
            return self.base
        if name != self.base and name not in self.aliases and self.lora(name) is None:
            raise NotFound(f"The model '{name}' does not exist; this server serves "
                           f"{', '.join(repr(n) for n in self.names())}", param="model",
                           code="model_not_found")
        return name
