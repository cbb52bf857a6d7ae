"""Container pages: list with bulk actions, detail (actions, live state, logs, inspect, jobs), create form.

Actions are POST forms that work without JavaScript (redirect + message); static/js/containers.js
sends the same forms with Accept: application/json and updates the page from the events socket.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import select_template
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from workers.engine.containers import states

from . import bounds, events, permissions, selectors, services
from .forms import (
    FIELD_OF,
    SIGNAL_CHOICES,
    CommitForm,
    ContainerCreateForm,
    add_service_error,
    form_field,
    initial_from_params,
)
from .models import Container, Image, Job
from .views import (
    error_json,
    form_errors_json,
    job_rows,
    jobs_visible_to,
    refusal_json,
    refused,
    visible_container_or_404,
    wants_json,
)
from .views_move import send_hosts

PAGE_SIZE = selectors.pages.PAGE_SIZE
BULK_ACTIONS = ("start", "stop", "restart", "remove")
# Buttons on the detail page: action -> states in which it makes sense (the same table as services).
ACTION_STATES = services.ACTION_STATES
FILE_KINDS = ("container.export", "container.logs")


def _inspect(container: Container) -> dict[str, Any]:
    """Everything known about a container, as `berth inspect` would show it."""
    return {
        "id": container.engine_id, "name": container.name, "image": container.image_ref,
        "image_id": container.image.digest if container.image else None, "host": container.host.name,
        "state": container.state, "exit_code": container.exit_code, "oom_killed": container.oom_killed,
        "status_message": container.status_message, "created": events._iso(container.created),
        "started_at": events._iso(container.started), "finished_at": events._iso(container.finished),
        "restart_policy": container.restart_policy, "restart_count": container.restart_count,
        "labels": container.labels, "owner": container.owner.get_username() if container.owner else None,
        "team": container.team.name if container.team else None, "config": container.config,
    }


def _state_event(container: Container) -> dict[str, Any]:
    return {**events.container_event(container), "status_message": container.status_message,
            "restart_count": container.restart_count}


@login_required
def container_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(selectors.pages.container_rows(request.user),
                     selectors.pages.CONTAINERS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "containers/list.html", {"containers": page.object_list, "page": page,
                                                    "bulk_actions": BULK_ACTIONS,
                                                    "states": [*(s for s, _ in Container.State.choices), "unknown"]})


@login_required
@require_GET
def container_states(request: HttpRequest) -> JsonResponse:
    """State of the listed containers (?ids=1,2) as container events; gone ones as state "removed"."""
    ids = bounds.ids_in_range(request.GET.get("ids", "").split(","), Container)[:PAGE_SIZE]
    found = {c.pk: c for c in permissions.visible_containers(request.user).filter(pk__in=ids)}
    out = [_state_event(found[i]) if i in found else {"type": "container", "id": i, "state": "removed"}
           for i in ids]
    return JsonResponse({"containers": out})


def _create_failed(request: HttpRequest, pk: int) -> HttpResponse:
    """The container of a failed create job is gone (the host refused it): say why, offer to retry."""
    job_id = request.GET.get("job", "")
    job = jobs_visible_to(request.user).filter(pk=job_id, kind="container.create", target_id=str(pk)).first() \
        if bounds.as_id(job_id, Job) else None
    if job is None:
        raise Http404("no such container")
    return render(request, "containers/create_failed.html", {"job": job, "name": job.params.get("name", "")},
                  status=404 if job.state == Job.State.FAILED else 200)


@login_required
def container_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = request.user
    container = permissions.visible_containers(user).filter(pk=pk).first()
    if container is None:
        return _create_failed(request, pk)
    history = job_rows(list(selectors.pages.jobs_of(user, "container", pk)))
    files = [j for j in history if j.kind in FILE_KINDS][:10]
    allowed = {a: permissions.can(user, f"container.{a}", container) for a in services.CONTAINER_ACTIONS}
    try:
        select_template(["containers/_logs.html"])
        logs_panel = allowed["logs"]
    except Exception:
        logs_panel = False
    context = {
        "container": container, "inspect_json": json.dumps(_inspect(container), indent=2, sort_keys=True),
        "jobs": history, "files": files, "allowed": allowed, "logs_panel": logs_panel,
        # A container with no process has nothing to act on but its output: show that first, in view.
        "logs_first": container.state not in states.ACTIVE,
        "action_states": json.dumps(ACTION_STATES), "signals": [s for s, _ in SIGNAL_CHOICES],
        "commit_form": CommitForm(user=user, initial={"team": container.team_id or ""}),
        "send_hosts": send_hosts(container) if permissions.can(user, "container.move", container) else [],
        "pending_job": request.GET.get("job", "") if bounds.as_id(request.GET.get("job", ""), Job) else "",
        # the console, stats and files panels (templates/containers/_way_in.html)
        "way_in": {a: permissions.can(user, f"container.{a}", container) for a in ("exec", "stats", "files",
                                                                                   "archive_put")},
    }
    return render(request, "containers/detail.html", context)


def _action_params(request: HttpRequest, action: str) -> dict[str, Any]:
    post = request.POST
    if action in ("stop", "restart"):
        return {"timeout": post.get("timeout", "")}
    if action == "kill":
        return {"signal": post.get("signal", "SIGKILL")}
    if action == "remove":
        return {"force": post.get("force") in ("1", "on", "true")}
    if action == "logs":
        return {"timestamps": post.get("timestamps") in ("1", "on", "true"), "tail": post.get("tail") or None}
    if action == "commit":
        return {"ref": post.get("ref", ""), "message": post.get("message", ""),
                "team_id": post.get("team") or None, "shared": post.get("shared") in ("1", "on", "true")}
    return {}


def _done(request: HttpRequest, container: Container, job: Job, text: str) -> HttpResponse:
    if wants_json(request):
        return JsonResponse({"job": events.job_event(job), "message": text}, status=202)
    messages.info(request, text)
    if job.kind == "container.remove":
        return redirect("containers")
    return redirect(reverse("container-detail", args=[container.pk]) + f"?job={job.pk}")


@login_required
@require_POST
def container_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    container = visible_container_or_404(request.user, pk)
    if action not in services.CONTAINER_ACTIONS:
        raise Http404("no such action")
    try:
        job = services.container_action(request.user, container, action, params=_action_params(request, action),
                                         request=request)
    except services.ServiceError as exc:
        return refused(request, exc, "container-detail", pk=container.pk)
    verb = {"logs": "Log download", "export": "Export", "commit": "Commit"}.get(action, action.capitalize())
    return _done(request, container, job, f"{verb} of {container.name} queued as job #{job.pk}.")


@login_required
@require_POST
def container_logs_download(request: HttpRequest, pk: int) -> HttpResponse:
    """The logs panel's "Download full log": a container.logs job; the file link appears when it is done."""
    return container_action(request, pk, "logs")


@login_required
@require_POST
def container_bulk(request: HttpRequest) -> HttpResponse:
    action = request.POST.get("action", "")
    ids = bounds.ids_in_range(request.POST.getlist("ids"), Container)
    if action not in BULK_ACTIONS or not ids:
        text = "Pick containers and an action." if action in BULK_ACTIONS else "Unknown action."
        if wants_json(request):
            return refusal_json("invalid", text, {}, 400)
        messages.error(request, text)
        return redirect("containers")
    done: list[Job] = []
    errors: list[dict[str, Any]] = []
    for container in permissions.visible_containers(request.user).filter(pk__in=ids):
        params = {"force": False} if action == "remove" else {}
        try:
            done.append(services.container_action(request.user, container, action, params=params, request=request))
        except services.ServiceError as exc:
            errors.append({"id": container.pk, "name": container.name, "message": exc.message})
    if wants_json(request):
        return JsonResponse({"jobs": [events.job_event(j) for j in done], "errors": errors}, status=202)
    if done:
        messages.info(request, f"{action.capitalize()} queued for {len(done)} container(s).")
    for e in errors:
        messages.error(request, f"{e['name']}: {e['message']}")
    return redirect("containers")


@login_required
def container_create(request: HttpRequest) -> HttpResponse:
    user = request.user
    retry_of = None
    if request.method == "POST":
        form = ContainerCreateForm(request.POST, user=user)
        if form.is_valid():
            try:
                container, job = services.create_container(user, request=request, **form.service_kwargs())
            except services.ServiceError as exc:
                if wants_json(request):
                    return error_json(exc)
                add_service_error(form, exc)
            else:
                url = reverse("container-detail", args=[container.pk]) + f"?job={job.pk}"
                if wants_json(request):
                    return JsonResponse({"container": {"id": container.pk, "name": container.name, "url": url},
                                         "job": events.job_event(job)}, status=202)
                messages.info(request, f"Creating {container.name} on {container.host.name} (job #{job.pk}).")
                return redirect(url)
        elif wants_json(request):
            return form_errors_json(form)
        status = 400
    else:
        initial: dict[str, Any] = {"start": True, "restart_policy": "no"}
        from_job = request.GET.get("from_job", "")
        if bounds.as_id(from_job, Job):
            retry_of = jobs_visible_to(user).filter(pk=from_job, kind="container.create").first()
            if retry_of is not None:
                initial.update(initial_from_params(retry_of.params or {}, retry_of))
        image_id = request.GET.get("image", "")
        if bounds.as_id(image_id, Image):
            image = permissions.visible_images(user).filter(pk=image_id).first()
            if image is not None:
                initial.update(image=str(image.pk), host=str(image.host_id))
        if retry_of is not None and retry_of.state == Job.State.FAILED:
            # Show the host's refusal next to the field it is about, with the input as it was.
            data = {k: ("on" if v is True else v) for k, v in initial.items() if v is not False}
            form = ContainerCreateForm(data, user=user)
            form.is_valid()
            form.add_error(form_field(form, retry_of.error_field), retry_of.error or "the host refused it")
        else:
            form = ContainerCreateForm(initial=initial, user=user)
        status = 200
    context = {"form": form, "retry_of": retry_of, "no_hosts": not form.fields["host"].choices,
               "field_of": json.dumps(FIELD_OF)}
    return render(request, "containers/create.html", context, status=status)
