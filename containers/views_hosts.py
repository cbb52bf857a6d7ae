"""Dashboard pages of hosts (issue 18): the Hosts page, and for admins a host's labels, cordon/uncordon/drain and
the join tokens new machines join with (a new token is shown once, on the response that made it). Every
change goes through services/hosts.py, which checks that the user is an admin and audits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from . import permissions, selectors, services
from .services import hosts as host_services
from .services.drain_move import move_off

HOST_ACTIONS = ("cordon", "uncordon", "drain", "drain-move")


def _refused(request: HttpRequest, exc: services.ServiceError) -> HttpResponse:
    if exc.status == 404:
        raise Http404(exc.message)
    return render(request, "containers/refused.html", {"message": exc.message}, status=exc.status)


def _page(request: HttpRequest, *, status: int = 200, **extra: Any) -> HttpResponse:
    context: dict[str, Any] = {"hosts": selectors.pages.hosts_with_containers(request.user),
                               "offline_after": settings.BERTH_HOST_OFFLINE_AFTER, "drain_note": host_services.DRAIN_NOTE,
                               "offline_job_timeout_default": settings.BERTH_OFFLINE_JOB_TIMEOUT,
                               "join_tokens": None, "token_form": {}, "token_errors": {}, "new_token": None}
    if request.user.is_superuser:
        context["join_tokens"] = services.join_tokens(request.user)
    context.update(extra)
    response = render(request, "containers/hosts.html", context, status=status)
    response["Cache-Control"] = "no-store"  # the response that shows a new join token must not be cached
    return response


@login_required
def hosts(request: HttpRequest) -> HttpResponse:
    return _page(request)


@login_required
@require_POST
def join_token_create(request: HttpRequest) -> HttpResponse:
    """Make a join token; this response is the only one that shows it (with the command to join)."""
    form = {k: request.POST.get(k, "").strip() for k in ("name", "host_name", "expires_hours")}
    try:
        hours = services._int(form["expires_hours"], "expires_hours", low=1, high=24 * 366)
        expires = timezone.now() + timedelta(hours=hours) if hours else None
        row, token = services.create_join_token(request.user, form["name"], expires=expires,
                                                host_name=form["host_name"], request=request)
    except services.ServiceError as exc:
        if exc.status in (401, 403, 404):
            return _refused(request, exc)
        return _page(request, status=400, token_form=form, token_errors={exc.field or "name": exc.message})
    return _page(request, new_token={"row": row, "token": token}, status=201)


@login_required
@require_POST
def join_token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        row = services.revoke_join_token(request.user, pk, request=request)
    except services.ServiceError as exc:
        return _refused(request, exc)
    joined = ", ".join(h.name for h in row.hosts.all())
    messages.info(request, f"Join token {row.name} ({row.prefix}…) revoked."
                  + (f" Hosts that joined with it ({joined}) are refused at their next heartbeat." if joined else ""))
    return redirect("hosts")


@login_required
@require_POST
def host_labels(request: HttpRequest, pk: int) -> HttpResponse:
    host = get_object_or_404(permissions.visible_hosts(request.user), pk=pk)
    try:
        services.update_host(request.user, host, labels=request.POST.get("labels", ""), request=request)
    except services.ServiceError as exc:
        if exc.status != 400:
            return _refused(request, exc)
        messages.error(request, f"Labels of {host.name} not changed: {exc.message}")
        return redirect("hosts")
    messages.info(request, f"Labels of {host.name} saved.")
    return redirect("hosts")


@login_required
@require_POST
def host_offline_timeout(request: HttpRequest, pk: int) -> HttpResponse:
    """Seconds the host's queued jobs wait while it is offline (admins); empty: the setting's."""
    host = get_object_or_404(permissions.visible_hosts(request.user), pk=pk)
    text = request.POST.get("offline_job_timeout", "").strip()
    value = int(text) if text.isascii() and text.isdigit() else (None if not text else text)
    try:
        services.update_host(request.user, host, offline_job_timeout=value, request=request)
    except services.ServiceError as exc:
        if exc.status != 400:
            return _refused(request, exc)
        messages.error(request, f"Offline job timeout of {host.name} not changed: {exc.message}")
        return redirect("hosts")
    messages.info(request, f"Offline job timeout of {host.name} saved.")
    return redirect("hosts")


@login_required
@require_POST
def host_state(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """Cordon, uncordon or drain a host (admins); drain-move also moves each container off, as the API's drain
    with move: true (the same services, so the same refusals)."""
    if action not in HOST_ACTIONS:
        raise Http404("no such action")
    host = get_object_or_404(permissions.visible_hosts(request.user), pk=pk)
    try:
        if action == "drain-move":
            host, _ = services.drain_host(request.user, host, request=request)
            _say_moves(request, host, move_off(request.user, host, request=request))
        elif action == "drain":
            host, remaining = services.drain_host(request.user, host, request=request)
            names = ", ".join(c.name for c in remaining) or "nothing"
            messages.warning(request, f"{host.name} is draining (cordoned). Still on it: {names}. "
                                      f"{host_services.DRAIN_NOTE}")
        else:
            services.update_host(request.user, host, cordoned=action == "cordon", request=request)
            messages.info(request, f"{host.name} {'cordoned: it takes no new containers' if action == 'cordon' else 'uncordoned'}.")
    except services.ServiceError as exc:
        return _refused(request, exc)
    return redirect("hosts")


def _say_moves(request: HttpRequest, host, moves: list[dict[str, Any]]) -> None:
    """One line for what left (each container, its new host and job), one for what stays and why."""
    went = [f"{m['name']} to {m['host']} (job #{m['job']})" for m in moves if "job" in m]
    stays = [f"{m['name']} ({m['error']})" for m in moves if "job" not in m]
    if went:
        messages.info(request, f"{host.name} is draining (cordoned). Moving: {', '.join(went)}.")
    if stays:
        messages.warning(request, f"Still on {host.name}: {'; '.join(stays)}.")
    if not moves:
        messages.info(request, f"{host.name} is draining (cordoned); it has no container to move.")
