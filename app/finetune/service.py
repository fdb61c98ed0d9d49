"""The fine-tuning service for these settings: where its files, jobs and adapters live.
Memory mode keeps records on disk in the cache folder (`{cache_dir}/finetune`), so jobs and
their events outlive the process; Redis mode keeps them in the sessions' Redis, never
expiring (they are few and small; a job's adapter outlives any idle TTL), and the uploaded
files' bytes there too, for a job created on any replica (`files.py`)."""

from __future__ import annotations

from app.engine.model import default_model_dir
from app.finetune.files import FileStore
from app.finetune.manager import AdapterRegistry, JobManager
from app.finetune.store import JobStore
from app.leases import Leases
from app.records import DiskRecords, Records, RedisRecords
from app.settings import Settings


def build_fine_tuning(settings: Settings, records: Records, leases: Leases,
                      adapters: AdapterRegistry | None) -> JobManager | None:
    """The job manager, or None when fine-tuning is off. `records`: the service's own (its
    Redis client is shared in Redis mode); `leases`: the service's own (which replica runs
    each job); `adapters`: where succeeded jobs are served."""
    if not settings.fine_tuning:
        return None
    kept: Records = (RedisRecords(records.redis, idle_ttl_s=None)
                     if isinstance(records, RedisRecords)
                     else DiskRecords(settings.cache_dir / "finetune"))
    base = settings.model or str(default_model_dir(settings.cache_dir))
    return JobManager(JobStore(kept),
                      FileStore(kept, settings.cache_dir / "files", settings.max_upload_bytes,
                                redis=records.redis if isinstance(records, RedisRecords) else None),
                      base_model=base, adapters_dir=settings.cache_dir / "adapters",
                      max_concurrent=settings.max_concurrent_jobs, leases=leases,
                      adapters=adapters)
