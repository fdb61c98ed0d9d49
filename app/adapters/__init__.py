"""LoRA adapters served by name on every replica: `serving.py` (this replica's engine),
`registry.py` (what every replica serves, shared through Redis), `folders.py` (peft folders:
checked, packed into the registry, written out again)."""

from app.adapters.registry import Entry, MemoryRegistry, RedisRegistry, Registry, registry_for
from app.adapters.serving import Adapters, LoraDisabled, Served

__all__ = ["Adapters", "Entry", "LoraDisabled", "MemoryRegistry", "RedisRegistry", "Registry",
           "Served", "registry_for"]
