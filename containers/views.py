"""Dashboard pages (server-rendered; live parts update over /ws/events/, see static/js/).

Containers and images live in views_containers.py and views_images.py. Every visibility decision
goes through containers/permissions.py, every action through containers/services.py.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from . import bounds, events, permissions, selectors
from .models import Container, Image, Job

JOBS_PAGE_SIZE = selectors.pages.JOBS_PAGE_SIZE


def jobs_visible_to(user):
    """Jobs a user may see (containers/permissions.py decides)."""
    return selectors.jobs(user)


def wants_json(request: HttpRequest) -> bool:
    """Scripts ask for JSON (Accept: application/json); plain form posts get a redirect."""
    return "application/json" in request.headers.get("Accept", "")


# The page scripts get a refusal in-band (HTTP 200, "ok": false, the would-be "status"): a refused
# form is an answer the page shows next to the field, not a failed request for the browser's console.
# The REST API (/api/v1/) answers with real error statuses.
def refusal_json(code: str, message: str, errors: dict[str, list[str]], status: int) -> JsonResponse:
    return JsonResponse({"ok": False, "status": status, "code": code, "message": message, "errors": errors})


def error_json(error) -> JsonResponse:
    """A services.ServiceError for a script: the message and the form field it is about."""
    from .forms import FIELD_OF

    field = FIELD_OF.get(error.field, error.field) if error.field else None
    return refusal_json(error.code, error.message, {field or "__all__": [error.message]}, error.status)


def refused(request: HttpRequest, error, fallback: str, **kwargs) -> HttpResponse:
    """A services.ServiceError answered: 404 stays a 404; a script gets JSON; a form post gets the
    message flashed on the page named `fallback` (a URL name, with `kwargs`)."""
    if error.status == 404:
        raise Http404(error.message)
    if wants_json(request):
        return error_json(error)
    messages.error(request, error.message)
    return redirect(fallback, **kwargs)


def form_errors_json(form) -> JsonResponse:
    errors = {name: [str(e) for e in errs] for name, errs in form.errors.items()}
    first = next(iter(errors.values()), ["invalid input"])[0]
    return refusal_json("invalid", first, errors, 400)


def target_url(job: Job) -> str | None:
    """The page of a job's target (it may be gone; the page then says so)."""
    if job.target_id.isdigit() and job.target_type in ("container", "image"):
        return f"/{job.target_type}s/{job.target_id}/"
    if job.target_type == "host":
        return "/hosts/"
    if job.target_type == "volume" and job.target_id.isdigit():
        return f"/volumes/#volume-{job.target_id}"
    return None


FILE_KINDS = ("container.export", "container.logs", "image.save")


def job_rows(jobs: list[Job]) -> list[Job]:
    """Jobs with `.target_url`, `.download_url` and `.file_kind` (it makes a file) set for the row template."""
    for job in jobs:
        job.target_url = target_url(job)
        job.download_url = download_url(job)
        job.file_kind = job.kind in FILE_KINDS
    return jobs


def download_url(job: Job) -> str | None:
    expired = isinstance(job.result, dict) and job.result.get("expired")
    if job.kind in FILE_KINDS and job.state == Job.State.SUCCEEDED \
            and not expired:
        return f"/jobs/{job.pk}/download/"
    return None


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return redirect("containers")


@login_required
def jobs(request: HttpRequest) -> HttpResponse:
    items = job_rows(selectors.pages.job_rows(request.user))
    return render(request, "containers/jobs.html", {"jobs": items})


@login_required
def jobs_state(request: HttpRequest) -> JsonResponse:
    """Current state of the listed jobs (?ids=1,2,3) as event dicts: pages resync with it when their
    WebSocket (re)connects, since events sent while it was down are not replayed."""
    ids = bounds.ids_in_range(request.GET.get("ids", "").split(","), Job)[:JOBS_PAGE_SIZE]
    found = jobs_visible_to(request.user).filter(pk__in=ids)
    return JsonResponse({"jobs": [events.job_event(job) for job in found]})


@login_required
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(jobs_visible_to(request.user), pk=pk)
    job_rows([job])
    context = {
        "job": job,
        "params_json": json.dumps(job.params, indent=2, sort_keys=True),
        "result_json": json.dumps(job.result, indent=2, sort_keys=True) if job.result is not None else "",
    }
    return render(request, "containers/job_detail.html", context)


@login_required
@require_GET
def job_download(request: HttpRequest, pk: int) -> HttpResponse:
    """The file of a finished export/save/logs job (services.download_response authorizes and streams)."""
    from . import services

    job = get_object_or_404(jobs_visible_to(request.user), pk=pk)
    try:
        return services.download_response(request.user, job, request=request)
    except services.ServiceError as exc:
        if exc.status == 404:
            raise Http404(exc.message) from None
        return render(request, "containers/refused.html", {"message": exc.message, "job": job},
                      status=exc.status)


@login_required
@require_POST
def probe_host(request: HttpRequest, pk: int) -> HttpResponse:
    from . import services

    host = get_object_or_404(permissions.visible_hosts(request.user), pk=pk)
    try:
        job = services.probe_host(request.user, host, request=request)
    except services.ServiceError as exc:
        return render(request, "containers/refused.html", {"message": exc.message}, status=exc.status)
    messages.info(request, f"Probe of {host.name} queued as job #{job.pk}.")
    return redirect("jobs")


def visible_image_or_404(user, pk: int) -> Image:
    return get_object_or_404(permissions.visible_images(user), pk=pk)


def visible_container_or_404(user, pk: int) -> Container:
    return get_object_or_404(permissions.visible_containers(user), pk=pk)


def team_names(user) -> dict[int, Any]:
    return dict(permissions.visible_teams(user).values_list("pk", "name"))
