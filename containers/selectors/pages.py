"""The dashboard's reads: what each page lists for a user, built on the same visibility rules as the API."""

from __future__ import annotations

from collections import defaultdict

from django.db.models import QuerySet

from .. import permissions
from ..models import Container, Host, Image, Job, Volume

PAGE_SIZE = 500  # rows on a list page
JOBS_PAGE_SIZE = 100
HISTORY = 50  # jobs on an object's page


def container_rows(user) -> list[Container]:
    return list(permissions.visible_containers(user).order_by("-created")[:PAGE_SIZE])


def image_rows(user) -> list[Image]:
    return list(permissions.visible_images(user).order_by("name", "tag", "host__name")[:PAGE_SIZE])


def volume_rows(user) -> list[Volume]:
    return list(permissions.visible_volumes(user).prefetch_related("containers")
                .order_by("name", "host__name", "-created")[:PAGE_SIZE])


def job_rows(user) -> list[Job]:
    return list(permissions.visible_jobs(user)[:JOBS_PAGE_SIZE])


def hosts_with_containers(user) -> list[Host]:
    """Every host the user sees, each with `.visible_containers`: theirs on it, by name."""
    hosts = list(permissions.visible_hosts(user).select_related("join_token"))
    by_host: dict[int, list[Container]] = defaultdict(list)
    for c in permissions.visible_containers(user).filter(host__in=hosts).order_by("name"):
        by_host[c.host_id].append(c)
    for host in hosts:
        host.visible_containers = by_host.get(host.pk, [])
    return hosts


def jobs_of(user, target_type: str, pk: int) -> QuerySet[Job]:
    """The jobs on one object's page (newest first, as visible_jobs orders them)."""
    return permissions.visible_jobs(user).filter(target_type=target_type, target_id=str(pk))[:HISTORY]


def pending_imports(user) -> list[Job]:
    """The user's own image imports and loads still under way (the images page shows them)."""
    return [j for j in permissions.visible_jobs(user).filter(kind__in=("image.import", "image.load"),
                                                              requested_by=user)[:5]
            if not j.finished_state]


def containers_using(user, image: Image) -> list[Container]:
    return list(permissions.visible_containers(user).filter(image=image))
