"""Query parameters of list reads, turned into queryset filters: ids or names, ordering, choices, labels,
audit filters. `params` is a QueryDict (request.query_params, request.GET). Bad values are ServiceErrors
(400s) naming the filter."""

from __future__ import annotations

import datetime
import re

from django.contrib.auth import get_user_model
from django.db.models import Q
from django.db.models.fields.json import KeyTransform
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .. import audit, bounds, services
from ..models import Host, Image, Team


def id_or_name(value: str, id_field: str, name_field: str) -> Q:
    value = value.strip()
    if not (value.isascii() and value.isdigit()):
        return Q(**{name_field: value})
    name = id_field.removesuffix("_id")
    return Q(**{id_field: filter_id(value, name, {"host": Host, "team": Team, "image": Image}.get(name)
                                                  or get_user_model())})


def owner_filters(qs, params):
    """The host, owner and team filters every list of owned objects takes (id or name each)."""
    for key, id_field, name_field in (("host", "host_id", "host__name"), ("owner", "owner_id", "owner__username"),
                                      ("team", "team_id", "team__name")):
        if params.get(key):
            qs = qs.filter(id_or_name(params[key], id_field, name_field))
    return qs


def filter_id(value: str, name: str, model) -> int:
    """A digit string as an id of `model`, or a 400 naming the filter if no id can be that large."""
    top = bounds.id_max(model)
    if len(value) > len(str(top)) or int(value) > top:
        raise services.ServiceError("invalid", f"{name} must be an id (at most {top}) or a name, not "
                                               f"{value[:30]}{'…' if len(value) > 30 else ''}", field=name)
    return int(value)


def ordering(qs, params, allowed: list[str], default: list[str]):
    if "ordering" not in params:
        return qs.order_by(*default)
    raw = params["ordering"].strip()
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    if not keys:
        raise services.ServiceError("invalid", f"give a sort key: {', '.join(allowed)}", field="ordering")
    for key in keys:
        if key.lstrip("-") not in allowed:
            raise services.ServiceError("invalid", f"cannot order by {key!r}: use {', '.join(allowed)}",
                                        field="ordering")
    return qs.order_by(*keys, "-pk")


def choice(params, name: str, choices: list[str]) -> list[str] | None:
    if name not in params:
        return None
    raw = params[name].strip()
    values = [v.strip() for v in raw.split(",") if v.strip()]
    if not values:
        raise services.ServiceError("invalid", f"{name} is empty: use {', '.join(choices)}", field=name)
    bad = [v for v in values if v not in choices]
    if bad:
        raise services.ServiceError("invalid", f"unknown {name} {bad[0]!r}: use {', '.join(choices)}", field=name)
    return values


# A label filter is blank (ignored), `key` or `key=value` with a key that is not blank: one definition for
# the schema and the server, so that what the schema calls valid is accepted. No NUL anywhere: the NUL guard
# (containers/nul_guard.py) refuses it in any query parameter, as PostgreSQL cannot compare it.
LABEL_FILTER_PATTERN = r"^(?:\s*|[^=\x00]*[^=\s\x00][^\x00]*)$"


def label_filter(qs, params):
    for i, raw in enumerate(params.getlist("label")):
        if not re.search(LABEL_FILTER_PATTERN, raw):
            raise services.ServiceError("invalid", "label filters look like label=key or label=key=value",
                                        field="label")
        if not raw.strip():
            continue
        key, eq, value = raw.partition("=")
        key = key.strip()
        if eq:
            qs = qs.alias(**{f"_label{i}": KeyTransform(key, "labels")}).filter(**{f"_label{i}": value})
        else:
            qs = qs.filter(labels__has_key=key)
    return qs


def filter_audit(qs, params, *, strict: bool = False):
    """Audit list filters shared by the API and the dashboard page (whose form sends empty fields; the
    API (`strict`) refuses an empty or unknown result and empty times)."""
    if strict and "result" in params and params["result"] not in audit.RESULTS:
        raise services.ServiceError("invalid", f"result must be one of {', '.join(audit.RESULTS)}", field="result")
    for name in ("action", "result", "target_type", "target_id", "via"):
        value = (params.get(name) or "").strip()
        if value:
            qs = qs.filter(**{name: value})
    if (params.get("actor") or "").strip():
        qs = qs.filter(actor_name=params["actor"].strip())
    if (params.get("team") or "").strip():
        qs = qs.filter(id_or_name(params["team"], "team_id", "team__name"))
    for name, lookup in (("since", "created__gte"), ("until", "created__lt")):
        raw = (params.get(name) or "").strip()
        if raw or (name in params and strict):
            try:
                when = parse_datetime(raw)
            except ValueError:
                when = None
            if when is None:
                raise services.ServiceError("invalid", f"{name} must be an ISO 8601 time like "
                                                       "2026-01-31T12:00:00Z", field=name)
            if timezone.is_naive(when):
                when = timezone.make_aware(when, datetime.UTC)
            qs = qs.filter(**{lookup: when})
    return qs
