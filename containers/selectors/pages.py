"""The dashboard's reads: what each page lists for a user, built on the same visibility rules as the API."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from .. import permissions
from ..models import Container, Host, Image, Job, Volume

PAGE_SIZE = 500  # rows on a list page
CONTAINERS_PER_PAGE = 100  # the containers page, paginated: a host may hold a thousand (issue 16)
HOST_CONTAINERS_SHOWN = 50  # names per host on the hosts page; the rest are counted and linked
JOBS_PAGE_SIZE = 100
HISTORY = 50  # jobs on an object's page


def container_rows(user) -> QuerySet[Container]:
    """Newest first, for a Paginator (the page shows CONTAINERS_PER_PAGE of them)."""
    return permissions.visible_containers(user).select_related("host", "image").order_by("-created", "-pk")


def image_rows(user) -> list[Image]:
    return list(permissions.visible_images(user).order_by("name", "tag", "host__name")[:PAGE_SIZE])


def volume_rows(user) -> list[Volume]:
    return list(permissions.visible_volumes(user).prefetch_related("containers")
                .order_by("name", "host__name", "-created")[:PAGE_SIZE])


def job_rows(user) -> list[Job]:
    return list(permissions.visible_jobs(user)[:JOBS_PAGE_SIZE])


def hosts_with_containers(user) -> list[Host]:
    """Every host the user sees, each with `.visible_containers`: the first HOST_CONTAINERS_SHOWN of theirs on it
    by name, and `.visible_container_count`: how many there are."""
    hosts = list(permissions.visible_hosts(user).select_related("join_token"))
    visible = permissions.visible_containers(user)
    counts = {r["host"]: r["n"] for r in visible.filter(host__in=hosts).order_by().values("host")
              .annotate(n=Count("pk", distinct=True))}
    for host in hosts:
        host.visible_container_count = counts.get(host.pk, 0)
        host.visible_containers = list(visible.filter(host=host).order_by("name")[:HOST_CONTAINERS_SHOWN]) \
            if host.visible_container_count else []
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
