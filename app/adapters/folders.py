"""An adapter's peft folder: checked before it is served, packed into the registry (its files,
when they are small enough to share through Redis) and written out again on each replica that
serves it (`{cache_dir}/lora/{version}`)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from app.errors import InvalidRequest

CONFIG = "adapter_config.json"  # what makes a folder a peft adapter
# An adapter up to this size is shared through Redis: the default model's (rank 8 on q and v,
# float32) is 1.8 MB, rank 16 on every projection 20 MB. A larger one is shared by its path,
# which then must be on a volume every replica mounts at the same place.
MAX_STORED_BYTES = 64 * 1024 * 1024
COMPLETE = ".streamchat-complete"  # written last: a folder half-written is never served


def checked(path: Path, max_rank: int) -> Path:
    """The adapter folder's absolute path, once it looks like a peft adapter this engine can
    serve (InvalidRequest `lora_path` naming what is wrong)."""
    path = path.expanduser().resolve()
    config = path / CONFIG
    try:
        rank = json.loads(config.read_text()).get("r")
    except FileNotFoundError:
        raise InvalidRequest(f"{path} is not a peft LoRA adapter folder (no {CONFIG})",
                             param="lora_path") from None
    except (OSError, ValueError) as exc:
        raise InvalidRequest(f"cannot read {config}: {exc}", param="lora_path") from None
    if isinstance(rank, int) and rank > max_rank:
        raise InvalidRequest(f"the adapter's rank is {rank}, over STREAMCHAT_MAX_LORA_RANK "
                             f"({max_rank})", param="lora_path")
    return path


def packed(folder: Path, max_bytes: int = MAX_STORED_BYTES) -> dict[str, bytes] | None:
    """The folder's files (its top level: peft saves nothing deeper), or None when they are
    larger than `max_bytes` together."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name != COMPLETE)
    if sum(p.stat().st_size for p in files) > max_bytes:
        return None
    return {p.name: p.read_bytes() for p in files}


def written(files: Mapping[str, bytes], target: Path) -> Path:
    """`files` as the folder `target` (kept if an earlier write finished it)."""
    if (target / COMPLETE).is_file():
        return target
    staging = target.with_name(f".{target.name}.{os.getpid()}.partial")  # replicas may share it
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name, data in files.items():
        if "/" in name or name.startswith("."):
            continue  # only plain names: a registry entry never writes outside its folder
        (staging / name).write_bytes(data)
    (staging / COMPLETE).write_text("ok\n")
    shutil.rmtree(target, ignore_errors=True)
    try:
        staging.rename(target)
    except OSError:  # another replica sharing this cache folder finished it first
        shutil.rmtree(staging, ignore_errors=True)
    return target
