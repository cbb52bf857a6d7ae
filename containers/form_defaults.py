"""Which host a form preselects: the one the user chose last time for this kind of job if it is online,
else one that has images the user may use, else the first online one (never blindly the alphabetically
first, which may have nothing to run)."""

from __future__ import annotations

from collections.abc import Iterable

from . import permissions
from .models import Host, Job


def default_host(user, hosts: list[Host], kinds: Iterable[str], needs_images: bool = True) -> Host | None:
    if not hosts:
        return None
    ids = {h.pk for h in hosts}
    usable = _hosts_with_images(user, hosts) if needs_images else ids
    last = (Job.objects.filter(requested_by=user, kind__in=list(kinds), host_id__in=ids)
            .order_by("-created").values_list("host_id", flat=True).first())
    if last is not None and last in usable:
        return next(h for h in hosts if h.pk == last)
    return next((h for h in hosts if h.pk in usable), hosts[0])


def _hosts_with_images(user, hosts: list[Host]) -> set[int]:
    images = permissions.visible_images(user).filter(host__in=hosts).select_related("host", "team")
    return {i.host_id for i in images if permissions.can(user, "image.use", i)}
