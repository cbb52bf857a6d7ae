"""Network jobs: create, remove, connect and disconnect on this host, by the network's engine name.

All idempotent: a create re-run finds the network made, a remove re-run finds it gone, a connect re-run finds
the container on it. The container's row gets the engine's view of its networking after a connect or
disconnect (addresses, ports: the container page shows them)."""

from __future__ import annotations

from typing import Any

from containers.models import Container, Network
from workers.handlers import common, handler


def _job_error(message: str, exc: Exception | None = None):
    from workers.tasks import JobError

    # the engine's stable code and field travel with the failed job
    return JobError(message, code=getattr(exc, "code", None), field=getattr(exc, "field", None))


def _row(job) -> Network | None:
    return Network.objects.filter(pk=job.target_id).first() if str(job.target_id).isdigit() else None


def ensure_network(params: dict[str, Any]) -> dict:
    """The host's network for these params (network_params), made when missing."""
    from workers.engine.net import NoSuchNetwork

    store = common.container_manager().net.store
    with store.locked():
        try:
            return store.get(params["engine_name"])
        except NoSuchNetwork:
            # a name space's own "bridge" is where its containers go when given no network: sized for many
            return store.create(params["engine_name"], subnet=params.get("subnet"), gateway=params.get("gateway"),
                                internal=bool(params.get("internal")), labels=params.get("labels") or {},
                                default_bridge=params.get("name") == "bridge")


def ensure_networks(params: dict[str, Any]) -> None:
    """The networks a container.create joins, made first when their own jobs have not run yet."""
    for definition in params.get("network_defs") or []:
        ensure_network(definition)


@handler("network.create")
def create(job, report) -> dict[str, Any]:
    from workers.engine.containers.errors import ContainerError

    row = _row(job)
    report(20, f"creating network {job.params.get('name')}")
    try:
        net = ensure_network(job.params)
    except ContainerError as exc:
        if row is not None:
            Network.objects.filter(pk=row.pk).delete()  # nothing half-made stays
        raise _job_error(f"could not create network {job.params.get('name')}: {exc}", exc) from None
    if row is not None:
        Network.objects.filter(pk=row.pk).update(subnet=net["subnet"], gateway=net["gateway"])
    return {"network_id": row.pk if row is not None else None, "subnet": net["subnet"], "gateway": net["gateway"]}


@handler("network.remove")
def remove(job, report) -> dict[str, Any]:
    from workers.engine.containers.errors import ContainerError
    from workers.engine.net import NoSuchNetwork

    row = _row(job)
    name = job.params.get("name")
    report(20, f"removing network {name}")
    try:
        common.container_manager().remove_network(job.params["engine_name"], force=bool(job.params.get("force")))
    except NoSuchNetwork:
        pass  # never made on this host, or removed by an earlier run of this job
    except ContainerError as exc:
        if row is not None:
            Network.objects.filter(pk=row.pk).update(state=Network.State.READY)
        raise _job_error(f"could not remove network {name}: {exc}", exc) from None
    if row is not None:
        Network.objects.filter(pk=row.pk).delete()
    return {"network_id": row.pk if row is not None else None, "removed": True}


def _container(job) -> Container | None:
    return Container.objects.filter(engine_id=job.params.get("container", "")).first()


@handler("network.connect")
def connect(job, report) -> dict[str, Any]:
    from workers.engine.containers.errors import ContainerError

    mgr = common.container_manager()
    row, container = _row(job), _container(job)
    report(20, f"connecting to network {job.params.get('name')}")
    try:
        ensure_network(job.params)
        if job.params["engine_name"] not in mgr.inspect(job.params["container"])["network"]["networks"]:
            mgr.connect_network(job.params["container"], job.params["engine_name"], job.params.get("aliases"))
    except ContainerError as exc:
        if row is not None and container is not None:
            row.containers.remove(container)
        raise _job_error(f"could not connect to network {job.params.get('name')}: {exc}", exc) from None
    view = mgr.inspect(job.params["container"])["network"]
    if container is not None:
        Container.objects.filter(pk=container.pk).update(network=view)
    return {"network": view}


@handler("network.disconnect")
def disconnect(job, report) -> dict[str, Any]:
    from workers.engine.containers.errors import ContainerError

    mgr = common.container_manager()
    container = _container(job)
    report(20, f"disconnecting from network {job.params.get('name')}")
    try:
        if job.params["engine_name"] in mgr.inspect(job.params["container"])["network"]["networks"]:
            mgr.disconnect_network(job.params["container"], job.params["engine_name"])
    except ContainerError as exc:
        raise _job_error(f"could not disconnect from network {job.params.get('name')}: {exc}", exc) from None
    view = mgr.inspect(job.params["container"])["network"]
    if container is not None:
        Container.objects.filter(pk=container.pk).update(network=view)
    return {"network": view}
