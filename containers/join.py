"""Joining a machine (issue 18): make and check join tokens, register the joining host, and tell a joined
host's worker that it is refused. Django-side only: the agent (manage.py berth_agent, workers/agent.py) calls
these against the control plane's database; the dashboard and the API reach them through services/hosts.py."""

from __future__ import annotations

import re
import secrets
from typing import Any

from django.db import transaction
from django.utils import timezone

from .api.auth import hash_token
from .models import Host, JoinToken

TOKEN_PREFIX = "berthjoin_"
PREFIX_LEN = 16  # characters kept in clear, to recognise a token in lists
HOST_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")  # it becomes a Celery queue name: host.<name>
LABEL_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,62}")
LABEL_VALUE_RE = re.compile(r"[A-Za-z0-9._-]{0,63}")
MAX_LABELS = 64


class JoinRefused(Exception):
    """A join or a heartbeat refused; the message says why and is safe to print."""


class LabelError(ValueError):
    """Labels that cannot be: the message says which."""


def make_token(user, name: str, *, expires=None, host_name: str = "") -> tuple[JoinToken, str]:
    """A new join token: (the row, the token text — the only time it exists in clear)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = JoinToken.objects.create(name=name, prefix=token[:PREFIX_LEN], key_hash=hash_token(token),
                                   host_name=host_name, created_by=user, expires=expires)
    return row, token


def parse_labels(value: Any) -> dict[str, str]:
    """Labels from "ssd,zone=a", ["ssd", "zone=a"] or {"ssd": "", "zone": "a"}: {"ssd": "", "zone": "a"}."""
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        value = [part for part in re.split(r"[,\n]", value) if part.strip()]
    if isinstance(value, list):
        pairs = []
        for item in value:
            if not isinstance(item, str):
                raise LabelError("each label is a string: key or key=value")
            key, _, val = item.strip().partition("=")
            pairs.append((key.strip(), val.strip()))
    elif isinstance(value, dict):
        pairs = [(k, "" if v is None else v) for k, v in value.items()]
    else:
        raise LabelError("labels are key or key=value items (e.g. ssd, zone=a)")
    if len(pairs) > MAX_LABELS:
        raise LabelError(f"at most {MAX_LABELS} labels")
    labels: dict[str, str] = {}
    for key, val in pairs:
        if not isinstance(key, str) or not LABEL_KEY_RE.fullmatch(key):
            raise LabelError(f"invalid label key {str(key)[:70]!r}: letters, digits, '.', '_', '/', '-' "
                             "(starting with a letter or digit, at most 63)")
        if not isinstance(val, str) or not LABEL_VALUE_RE.fullmatch(val):
            raise LabelError(f"invalid value of label {key}: letters, digits, '.', '_', '-' (at most 63)")
        labels[key] = val
    return labels


def token_row(token: str) -> JoinToken:
    """The usable join token `token` is (hash compared), else JoinRefused saying why."""
    row = JoinToken.objects.filter(key_hash=hash_token(token or "")).first()
    if row is None:
        raise JoinRefused("unknown join token (make one on the Hosts page, as an admin)")
    if row.revoked is not None:
        raise JoinRefused(f"join token {row.name} ({row.prefix}…) was revoked at {row.revoked:%Y-%m-%d %H:%M:%S %Z}")
    if row.expired:
        raise JoinRefused(f"join token {row.name} ({row.prefix}…) expired at {row.expires:%Y-%m-%d %H:%M:%S %Z}")
    return row


def join(token: str, name: str = "", labels: dict[str, str] | None = None) -> Host:
    """Check `token` and register (or update) the host `name` as joined with it; JoinRefused says why not.

    The name is the token's fixed host name when it has one (another is refused). An existing host joined
    with another token, or the control plane's own host (no token), is refused: re-joining it under a new
    token takes a token made for that host name, so a token cannot take over a host it was not made for."""
    from . import audit

    try:
        with transaction.atomic():
            row = token_row(token)
            name = (name or "").strip() or row.host_name
            if not name:
                raise JoinRefused("give the host a name (--name): this join token has no fixed host name")
            if row.host_name and name != row.host_name:
                raise JoinRefused(f"join token {row.name} is for host {row.host_name}, not {name}")
            if not HOST_NAME_RE.fullmatch(name):
                raise JoinRefused(f"invalid host name {name[:70]!r}: letters, digits, '.', '_', '-' (at most 63)")
            host = Host.objects.select_for_update().filter(name=name).first()
            if host is not None and host.join_token_id != row.pk and not row.host_name:
                raise JoinRefused(f"host {name} exists and did not join with this token; make a join token "
                                  f"for host name {name} to re-join it")
            now = timezone.now()
            JoinToken.objects.filter(pk=row.pk).update(last_used=now)
            if host is None:
                host = Host.objects.create(name=name, join_token=row, labels=labels or {})
            else:
                host.join_token = row
                fields = ["join_token"]
                if labels is not None:
                    host.labels = labels
                    fields.append("labels")
                host.save(update_fields=fields)
    except JoinRefused as exc:
        audit.record(None, None, "host.join", ("host", "", (name or "")[:200]), "denied", {"reason": str(exc)},
                     via="agent")
        raise
    audit.record(None, None, "host.join", host, "ok", {"token": row.pk, "token_name": row.name,
                                                       "labels": host.labels}, via="agent")
    return host


def refusal(host_name: str) -> str | None:
    """Why the worker of `host_name` may not serve (its join token revoked), or None. A host without a join
    token (the control plane's own, from make run) is never refused; an expired token only stops joining."""
    host = Host.objects.select_related("join_token").filter(name=host_name).first()
    if host is None or host.join_token is None or host.join_token.revoked is None:
        return None
    token = host.join_token
    return (f"host {host_name} is refused: its join token {token.name} ({token.prefix}…) was revoked at "
            f"{token.revoked:%Y-%m-%d %H:%M:%S %Z}; make a new token for it and join again")
