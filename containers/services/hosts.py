"""Actions on hosts. Hosts are shared by every tenant: anyone signed in sees them, only an operator
(superuser) asks one to do something, since a host's work is paid for by all its tenants."""

from __future__ import annotations

from ..models import Host, Job
from .common import _as_host, _authorize, _existing, _submit, scoped_key


def probe_host(user, host: Host | int | str, *, request=None, idempotency_key: str | None = None) -> Job:
    """Queue a host.probe job (re-read the host's facts and runtimes); refused with 403 for non-operators."""
    host = _as_host(host)
    _authorize(request, user, "host.probe", host)
    key = scoped_key(user, idempotency_key)
    existing = _existing(user, key, "host.probe", "host", str(host.pk))
    if existing is not None:
        return existing
    return _submit(request, user, "host.probe", host, host, {}, key)
