"""/api/v1/ routes. Paths have no trailing slash (as documented); the same routes with one also answer."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from . import audit, containers, hosts, images, jobs, networks, registries, teams, tokens, volumes, way_in


def _router(trailing_slash: bool) -> SimpleRouter:
    router = SimpleRouter(trailing_slash=trailing_slash)
    # before "hosts": hosts/{id} would take "join-tokens" as an id
    router.register("hosts/join-tokens", hosts.JoinTokenViewSet, basename="api-join-token")
    router.register("hosts", hosts.HostViewSet, basename="api-host")
    router.register("hosts", way_in.HostStatsViewSet, basename="api-host-stats")
    router.register("images", images.ImageViewSet, basename="api-image")
    router.register("containers", containers.ContainerViewSet, basename="api-container")
    router.register("containers", way_in.ContainerWayInViewSet, basename="api-container-way-in")
    router.register("volumes", volumes.VolumeViewSet, basename="api-volume")
    router.register("networks", networks.NetworkViewSet, basename="api-network")
    router.register("jobs", jobs.JobViewSet, basename="api-job")
    router.register("teams", teams.TeamViewSet, basename="api-team")
    router.register("tokens", tokens.TokenViewSet, basename="api-token")
    router.register("audit", audit.AuditViewSet, basename="api-audit")
    router.register("registries", registries.RegistryViewSet, basename="api-registry")
    return router


urlpatterns = [
    path("", include(_router(False).urls)),
    path("", include((_router(True).urls, "slash"), namespace="slash")),
]


def schema_without_slash_twins(endpoints, **kwargs):
    """drf-spectacular preprocessing hook: document each route once (the form without a trailing slash)."""
    return [e for e in endpoints if not (e[0].startswith("/api/v1/") and e[0].endswith("/"))]


UPLOAD_PATHS = ("/api/v1/images/import", "/api/v1/images/load")


def schema_upload_bodies_required(result, generator, request, public):
    """drf-spectacular postprocessing hook: an upload without a body is not a valid request."""
    for upload_path in UPLOAD_PATHS:
        operation = result.get("paths", {}).get(upload_path, {}).get("post")
        if operation and "requestBody" in operation:
            operation["requestBody"]["required"] = True
    return result
