"""Dashboard pages (server-rendered; live parts update over /ws/events/, see static/js/)."""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from . import events
from . import jobs as job_dispatch
from .models import Host

JOBS_PAGE_SIZE = 100


def jobs_visible_to(user):
    """Jobs a user may see (containers/permissions.py decides)."""
    from .permissions import visible_jobs

    return visible_jobs(user)


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return redirect("hosts")


@login_required
def hosts(request: HttpRequest) -> HttpResponse:
    context = {"hosts": Host.objects.all(), "offline_after": settings.BERTH_HOST_OFFLINE_AFTER}
    return render(request, "containers/hosts.html", context)


@login_required
def jobs(request: HttpRequest) -> HttpResponse:
    items = list(jobs_visible_to(request.user)[:JOBS_PAGE_SIZE])
    return render(request, "containers/jobs.html", {"jobs": items})


@login_required
def jobs_state(request: HttpRequest) -> JsonResponse:
    """Current state of the listed jobs (?ids=1,2,3) as event dicts: pages resync with it when their
    WebSocket (re)connects, since events sent while it was down are not replayed."""
    ids = [int(i) for i in request.GET.get("ids", "").split(",") if i.strip().isdigit()][:JOBS_PAGE_SIZE]
    found = jobs_visible_to(request.user).filter(pk__in=ids)
    return JsonResponse({"jobs": [events.job_event(job) for job in found]})


@login_required
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(jobs_visible_to(request.user), pk=pk)
    context = {
        "job": job,
        "params_json": json.dumps(job.params, indent=2, sort_keys=True),
        "result_json": json.dumps(job.result, indent=2, sort_keys=True) if job.result is not None else "",
    }
    return render(request, "containers/job_detail.html", context)


@login_required
@require_POST
def probe_host(request: HttpRequest, pk: int) -> HttpResponse:
    host = get_object_or_404(Host, pk=pk)
    job = job_dispatch.submit("host.probe", host, params={}, requested_by=request.user, target=host)
    messages.info(request, f"Probe of {host.name} queued as job #{job.pk}.")
    return redirect("jobs")
