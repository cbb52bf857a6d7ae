"""Volume jobs: create and remove a named volume on this host, by the engine id the web side chose.

Both are idempotent: a create re-run finds the volume made, a remove re-run finds it gone.
"""

from __future__ import annotations

from typing import Any

from containers.models import Volume
from workers.handlers import common, handler


def _job_error(message: str):
    from workers.tasks import JobError

    return JobError(message)


def _row(job) -> Volume | None:
    return Volume.objects.filter(pk=job.target_id).first() if str(job.target_id).isdigit() else None


@handler("volume.create")
def create(job, report) -> dict[str, Any]:
    from workers.engine.containers import volumes

    row = _row(job)
    params = job.params
    engine_id = row.engine_id if row is not None else params["engine_id"]
    name = row.name if row is not None else params["name"]
    report(20, f"creating volume {name}")
    try:
        info = volumes.create(common.state_root(), name, id=engine_id, labels=params.get("labels") or {},
                              size=params.get("size") or None)
    except volumes.VolumeError as exc:
        raise _job_error(f"could not create volume {name}: {exc}") from None
    return {"volume_id": row.pk if row is not None else None, "engine_id": engine_id,
            "mountpoint": info["mountpoint"]}


@handler("volume.remove")
def remove(job, report) -> dict[str, Any]:
    from workers.engine.containers import volumes

    row = _row(job)
    params = job.params
    engine_id = row.engine_id if row is not None else params["engine_id"]
    name = row.name if row is not None else params.get("name", engine_id[:12])
    report(20, f"removing volume {name}")
    try:
        volumes.remove(common.state_root(), engine_id, force=bool(params.get("force")))
    except volumes.NoSuchVolume:
        pass  # never made on this host, or removed by an earlier run of this job
    except volumes.VolumeError as exc:
        if row is not None:  # it stays: usable again
            Volume.objects.filter(pk=row.pk).update(state=Volume.State.READY)
        raise _job_error(f"could not remove volume {name}: {exc}") from None
    if row is not None:
        Volume.objects.filter(pk=row.pk).delete()
    return {"volume_id": row.pk if row is not None else None, "engine_id": engine_id, "removed": True}
