"""LoRA adapters the engine serves, by name: peft folders loaded into the running engine
(vLLM's LoRA support) and named as models. From `STREAMCHAT_LORA_MODULES` at start, from
`POST /v1/load_lora_adapter`, and from each fine-tuning job that succeeds. Adding one loads it
at once, so a bad folder is the caller's error now, not a failed reply later."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from app.engine.base import Engine, LoraAdapter
from app.errors import Conflict, InvalidRequest, NotFound, StreamchatError

log = logging.getLogger("streamchat.adapters")
CONFIG = "adapter_config.json"  # what makes a folder a peft adapter


@dataclass(frozen=True)
class Served:
    adapter: LoraAdapter
    created: int  # unix time it was loaded: its `created` in /v1/models


class LoraDisabled(InvalidRequest):
    code = "lora_disabled"


class Adapters:
    def __init__(self, engine: Engine, *, enabled: bool, max_rank: int) -> None:
        self.engine = engine
        self.enabled = enabled
        self.max_rank = max_rank
        self._served: dict[str, Served] = {}
        self._ids = itertools.count(1)  # vLLM's lora_int_id: unique for the process, never 0

    async def add(self, name: str, path: Path) -> LoraAdapter:
        """Load the peft adapter at `path` and serve it as `name`."""
        if not self.enabled:
            raise LoraDisabled("LoRA adapters are off: start the service with "
                               "STREAMCHAT_FINE_TUNING=true or STREAMCHAT_LORA_MODULES")
        if not name or name == self.engine.model_name:
            raise InvalidRequest(f"{name!r} cannot name an adapter", param="lora_name")
        if name in self._served:
            raise Conflict(f"a LoRA adapter named {name!r} is already loaded; unload it first",
                           param="lora_name", code="lora_exists")
        folder = await asyncio.to_thread(self._checked_folder, path)  # file reads: off the loop
        adapter = LoraAdapter(name, next(self._ids), folder)
        await self.engine.add_lora(adapter)
        self._served[name] = Served(adapter, int(time.time()))
        log.info("LoRA adapter %s loaded from %s", name, adapter.path)
        return adapter

    async def remove(self, name: str) -> None:
        served = self._served.pop(name, None)
        if served is None:
            raise NotFound(f"no LoRA adapter named {name!r} is loaded", param="lora_name",
                           code="lora_not_found")
        await self.engine.remove_lora(served.adapter.lora_id)
        log.info("LoRA adapter %s unloaded", name)

    async def restore(self) -> None:
        """Load every adapter served into a new engine (one restarted in place after the old
        one died: app/engine/supervisor.py), each under its name and id; one that no longer
        loads (its folder gone) is no longer served."""
        for name, served in list(self._served.items()):
            try:
                await self.engine.add_lora(served.adapter)
            except StreamchatError as exc:
                self._served.pop(name, None)
                log.error("LoRA adapter %s not served after the engine's restart: %s", name,
                          exc.message)

    def get(self, name: str) -> LoraAdapter | None:
        served = self._served.get(name)
        return None if served is None else served.adapter

    def all(self) -> list[Served]:
        return list(self._served.values())

    def _checked_folder(self, path: Path) -> str:
        """The adapter folder's absolute path, once it looks like a peft adapter this engine
        can serve."""
        path = path.expanduser().resolve()
        config = path / CONFIG
        try:
            rank = json.loads(config.read_text()).get("r")
        except FileNotFoundError:
            raise InvalidRequest(f"{path} is not a peft LoRA adapter folder (no {CONFIG})",
                                 param="lora_path") from None
        except (OSError, ValueError) as exc:
            raise InvalidRequest(f"cannot read {config}: {exc}", param="lora_path") from None
        if isinstance(rank, int) and rank > self.max_rank:
            raise InvalidRequest(f"the adapter's rank is {rank}, over STREAMCHAT_MAX_LORA_RANK "
                                 f"({self.max_rank})", param="lora_path")
        return str(path)
