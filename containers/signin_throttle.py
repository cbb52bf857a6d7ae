"""Sign-in throttling for the dashboard (and the admin) by django-axes.

Failed sign-ins are counted per account and, separately, per client address (REMOTE_ADDR; proxy headers
are not trusted) in the database, so every web process of a control plane shares the same counters.
After BERTH_LOGIN_FAILURE_LIMIT failures within BERTH_LOGIN_LOCKOUT_SECONDS, sign-ins for that account or
from that address are refused with 429 — the right password too — until that many seconds have passed
since the last counted failure. Throttled attempts are audited as `auth.throttled`.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from axes.helpers import get_cool_off
from axes.signals import user_locked_out
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from . import audit


def lockout_message(cool_off: timedelta | None) -> str:
    minutes = max(1, math.ceil(cool_off.total_seconds() / 60)) if cool_off else None
    wait = f"Try again in {minutes} minute{'s' if minutes != 1 else ''}." if minutes else "Try again later."
    return f"Too many failed sign-ins for this account or from this address. {wait}"


def lockout_response(request: HttpRequest, original_response: Any = None,
                     credentials: dict | None = None) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the sign-in page again, with the reason, as 429 with Retry-After."""
    cool_off = get_cool_off(request)
    username = str((request.POST.get("username") if request.method == "POST" else "") or "")[:150]
    form = AuthenticationForm(request, initial={"username": username})
    context = {"form": form, "throttled": lockout_message(cool_off), "next": request.POST.get("next", "")}
    response = render(request, "registration/login.html", context, status=429)
    if cool_off:
        response["Retry-After"] = str(math.ceil(cool_off.total_seconds()))
    return response


def _audit_lockout(sender, request=None, username=None, ip_address=None, **kwargs) -> None:
    name = str(username or "")[:150]
    audit.record(request, None, "auth.throttled", ("user", "", name), "denied",
                 {"username": name, "failures": getattr(request, "axes_failures_since_start", None)},
                 status_code=429)


user_locked_out.connect(_audit_lockout, dispatch_uid="berth-audit-signin-throttled")
