"""LoRA adapters the engine serves, by name: peft folders loaded into the running engine
(vLLM's LoRA support) and named as models. From `STREAMCHAT_LORA_MODULES` at start, from
`POST /v1/load_lora_adapter`, and from each fine-tuning job that succeeds. Adding one loads it
here at once, so a bad folder is the caller's error now, not a failed reply later; then it is
registered (`registry.py`), and every other replica's engine follows the registry: at each
announcement, at least every `RESYNC_S`, again once Redis answers after an outage, after an
engine restarted in place, and at start. A replica keeps serving what it has while Redis is
away; only loading and unloading need it (503 `store_unavailable`)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from app.adapters import folders
from app.adapters.registry import Entry, MemoryRegistry, Registry, taken
from app.engine.base import Engine, LoraAdapter
from app.errors import Conflict, InvalidRequest, NotReady, StoreUnavailable, StreamchatError
from app.ids import new_id
from app.tasks import STOP_BOUND_S, cancel_and_wait

log = logging.getLogger("streamchat.adapters")
RELISTEN_S = 1.0  # after the registry's announcements could not be followed


@dataclass(frozen=True)
class Served:
    adapter: LoraAdapter  # as this engine knows it: its own id, its local folder
    entry: Entry  # as every replica knows it: its name, version, root and `created`

    @property
    def created(self) -> int:
        return self.entry.created


class LoraDisabled(InvalidRequest):
    code = "lora_disabled"


class Adapters:
    def __init__(self, engine: Engine, *, enabled: bool, max_rank: int,
                 registry: Registry | None = None, folder: Path | None = None) -> None:
        self.engine = engine
        self.enabled = enabled
        self.max_rank = max_rank
        self.registry: Registry = registry if registry is not None else MemoryRegistry()
        self.folder = folder  # where adapters whose files are in the registry are written out
        self._served: dict[str, Served] = {}
        self._ids = itertools.count(1)  # vLLM's lora_int_id: unique for the process, never 0
        self._lock = asyncio.Lock()  # one change of the engine's adapters at a time
        self._failed: set[str] = set()  # versions that did not load here: said once
        self._follower: asyncio.Task[None] | None = None

    async def add(self, name: str, path: Path) -> LoraAdapter:
        """Load the peft adapter at `path` and serve it as `name`, on every replica."""
        if not self.enabled:
            raise LoraDisabled("LoRA adapters are off: start the service with "
                               "STREAMCHAT_FINE_TUNING=true or STREAMCHAT_LORA_MODULES")
        if not name or name == self.engine.model_name:
            raise InvalidRequest(f"{name!r} cannot name an adapter", param="lora_name")
        if name in self._served:
            raise taken(name)
        folder = await asyncio.to_thread(folders.checked, path, self.max_rank)  # off the loop
        # Small enough: its files go into the registry, and no replica needs `path`.
        files = await asyncio.to_thread(folders.packed, folder) if self.registry.shared else None
        entry = Entry(name=name, version=new_id("lora-"), root=str(folder),
                      created=int(time.time()), stored=files is not None)
        async with self._lock:
            if name in self._served:
                raise taken(name)
            adapter = await self._load(entry, folder)
            try:
                await self.registry.register(entry, files)
            except BaseException:
                await self._unload(name)
                raise
        log.info("LoRA adapter %s loaded from %s%s", name, folder, "" if entry.stored or not
                 self.registry.shared else " (shared by its path: other replicas read it there)")
        return adapter

    async def configured(self, name: str, path: Path) -> None:
        """An adapter this replica was started with (`STREAMCHAT_LORA_MODULES`): served as
        registered, when another replica registered it first, else added."""
        if name in await self.registry.entries():
            await self.sync()
            return
        with contextlib.suppress(Conflict):  # another replica registered it meanwhile
            await self.add(name, path)
        await self.sync()

    async def remove(self, name: str) -> None:
        """Stop serving `name`, on every replica."""
        async with self._lock:
            await self.registry.unregister(name)
            await self._unload(name)
        log.info("LoRA adapter %s unloaded", name)

    async def sync(self) -> None:
        """Serve what the registry lists, as it lists it, and nothing else. A version that
        does not load here is logged once and left out."""
        if not self.engine.ready:
            return  # a new engine is starting: `restore` syncs once it runs
        async with self._lock:
            entries = await self.registry.entries()  # under the lock: an `add` may be going on
            for name, served in list(self._served.items()):
                wanted = entries.get(name)
                if wanted is None or wanted.version != served.entry.version:
                    await self._unload(name)
            for name, entry in entries.items():
                if name in self._served or entry.version in self._failed:
                    continue
                try:
                    await self._load(entry, await self._local(entry))
                except NotReady as exc:
                    if isinstance(exc, StoreUnavailable):
                        raise
                    return  # the engine died meanwhile: `restore` syncs its successor
                except StreamchatError as exc:
                    self._failed.add(entry.version)
                    log.error("LoRA adapter %s is not served on this replica: %s", name,
                              exc.message)
                else:
                    log.info("LoRA adapter %s served, as registered by another replica", name)

    async def restore(self) -> None:
        """Load every adapter served into a new engine (one restarted in place after the old
        one died: app/engine/supervisor.py), each under its name and id; one that no longer
        loads (its folder gone) is no longer served; then what the registry changed meanwhile."""
        async with self._lock:
            for name, served in list(self._served.items()):
                try:
                    await self.engine.add_lora(served.adapter)
                except StreamchatError as exc:
                    self._served.pop(name, None)
                    log.error("LoRA adapter %s not served after the engine's restart: %s", name,
                              exc.message)
        await self._synced()

    async def start(self) -> None:
        """Once the engine runs, with LoRA on: serve what the registry lists, and follow the
        other replicas' changes from now on."""
        if self.enabled:
            await self.sync()
            self.follow()

    def follow(self) -> None:
        """Follow the other replicas' changes from now on (a task, in the running loop)."""
        if self._follower is None and self.registry.shared:
            self._follower = asyncio.create_task(self._follow(), name="lora-adapters")

    async def close(self) -> None:
        if self._follower is not None:
            await cancel_and_wait(self._follower, bound_s=STOP_BOUND_S)

    def get(self, name: str) -> LoraAdapter | None:
        served = self._served.get(name)
        return None if served is None else served.adapter

    def all(self) -> list[Served]:
        return list(self._served.values())

    async def _follow(self) -> None:
        while True:
            changes = self.registry.changes()
            if changes is None:
                return
            try:
                async with contextlib.aclosing(changes):
                    async for _ in changes:  # subscribed, then each announcement
                        await self._synced()
            except asyncio.CancelledError:
                raise
            except StoreUnavailable:  # the store's health says so: retried quietly
                pass
            except Exception:
                log.exception("following the LoRA adapters' registry failed; retrying")
            await asyncio.sleep(RELISTEN_S)

    async def _synced(self) -> None:
        try:
            await self.sync()
        except StoreUnavailable:  # served as they are until Redis answers: synced again then
            pass

    async def _local(self, entry: Entry) -> Path:
        """Where this replica reads the adapter: its own copy of the registry's files, or the
        path it was loaded from (a shared volume)."""
        if not entry.stored or self.folder is None:
            return Path(entry.root)
        target = self.folder / entry.version
        if not (target / folders.COMPLETE).is_file():
            files = await self.registry.files(entry)
            if files is None:
                raise InvalidRequest(f"the files of {entry.name} are gone", param="lora_path")
            await asyncio.to_thread(folders.written, files, target)
        return target

    async def _load(self, entry: Entry, folder: Path) -> LoraAdapter:
        adapter = LoraAdapter(entry.name, next(self._ids), str(folder))
        await self.engine.add_lora(adapter)
        self._served[entry.name] = Served(adapter, entry)
        return adapter

    async def _unload(self, name: str) -> None:
        served = self._served.pop(name, None)
        if served is None:
            return
        await self.engine.remove_lora(served.adapter.lora_id)
        folder = Path(served.adapter.path)
        if self.folder is not None and folder.parent == self.folder:  # our copy, not the root
            await asyncio.to_thread(shutil.rmtree, folder, True)
