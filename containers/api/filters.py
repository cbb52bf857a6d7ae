"""The list filters live in containers/selectors/params.py; these names keep the API modules' imports
working (they take the DRF request where the selectors take its query parameters)."""

from __future__ import annotations

from rest_framework.request import Request

from ..selectors.params import (
    LABEL_FILTER_PATTERN,
    choice,
    filter_audit,
    label_filter,
    ordering,
    owner_filters,
)
from ..selectors.params import filter_id as _filter_id
from ..selectors.params import id_or_name as _id_or_name


def _ordering(qs, request: Request, allowed: list[str], default: list[str]):
    return ordering(qs, request.query_params, allowed, default)


def _choice(request: Request, name: str, choices: list[str]) -> list[str] | None:
    return choice(request.query_params, name, choices)


def _label_filter(qs, request: Request):
    return label_filter(qs, request.query_params)


__all__ = ["LABEL_FILTER_PATTERN", "_choice", "_filter_id", "_id_or_name", "_label_filter", "_ordering",
           "filter_audit", "owner_filters"]
