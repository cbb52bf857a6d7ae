"""The API views, one module per resource (hosts, images, containers, jobs, teams, tokens, audit; volumes
in volumes.py) with their shared helpers in schema.py, filters.py and common.py. This module only
re-exports them for code that still imports `containers.api.views`."""

from .audit import AuditViewSet
from .common import (
    LenientNegotiation,
    ThrottleFirst,
    _idempotency_key,
    _job_response,
    _object_for_action,
    _valid,
    pick_host,
)
from .containers import CONTAINER_FILTERS, ContainerViewSet
from .filters import (
    LABEL_FILTER_PATTERN,
    _choice,
    _filter_id,
    _id_or_name,
    _label_filter,
    _ordering,
    filter_audit,
    owner_filters,
)
from .hosts import HostViewSet
from .images import IMAGE_FILTERS, ImageViewSet
from .jobs import JobViewSet
from .schema import ID, IDEMPOTENCY, PAGE, SEARCH, _action_schema, _param, errors, ordering_param
from .teams import TeamViewSet
from .tokens import TokenViewSet

__all__ = [
    "AuditViewSet", "CONTAINER_FILTERS", "ContainerViewSet", "HostViewSet", "ID", "IDEMPOTENCY", "IMAGE_FILTERS",
    "ImageViewSet", "JobViewSet", "LABEL_FILTER_PATTERN", "LenientNegotiation", "PAGE", "SEARCH", "TeamViewSet",
    "ThrottleFirst", "TokenViewSet", "_action_schema", "_choice", "_filter_id", "_id_or_name", "_idempotency_key",
    "_job_response", "_label_filter", "_object_for_action", "_ordering", "_param", "_valid", "errors",
    "filter_audit", "ordering_param", "owner_filters", "pick_host",
]
