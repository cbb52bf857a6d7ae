"""Image pages: list with import by upload, detail with history, containers using it and actions.

Uploads go through services.import_image (it checks the file looks like a tarball before any job is
made); static/js/images.js sends the form by XHR for an upload progress bar, then follows the job.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from . import events, permissions, selectors, services
from .api.uploads import StagingUploadHandler
from .forms import ImportForm, LoadForm, SaveForm, ShareForm, TagForm, add_service_error
from .models import Image, Job
from .views import (
    error_json,
    form_errors_json,
    job_rows,
    jobs_visible_to,
    refused,
    visible_image_or_404,
    wants_json,
)

ACTIONS = ("save", "remove", "tag")


def _list_context(request: HttpRequest, form: ImportForm | None = None) -> dict[str, Any]:
    user = request.user
    pending = [j for j in jobs_visible_to(user).filter(kind__in=("image.import", "image.load"),
                                                        requested_by=user)[:5]
               if not j.finished_state]
    return {"images": selectors.pages.image_rows(user), "form": form if isinstance(form, ImportForm) and not isinstance(form, LoadForm)
            else ImportForm(user=user), "load_form": form if isinstance(form, LoadForm) else LoadForm(user=user),
            "pending": pending}


@login_required
def image_list(request: HttpRequest) -> HttpResponse:
    return render(request, "images/list.html", _list_context(request))


@login_required
@require_GET
def image_rows(request: HttpRequest) -> HttpResponse:
    """The table body alone: the page swaps it in when an import finishes."""
    return render(request, "images/_rows.html", {"images": selectors.pages.image_rows(request.user)})


@login_required
@require_POST
@csrf_exempt  # checked below, once the upload handler is in place (the CSRF check parses the form)
def image_import(request: HttpRequest) -> HttpResponse:
    """The file is written anonymously into the web server's staging dir as the form is parsed (nothing
    stays if the request or the server dies) and handed to the service by its staged path."""
    handler = StagingUploadHandler(request)
    request.upload_handlers = [handler]
    handed: list = []
    try:
        return csrf_protect(lambda req: _image_import(req, handler, handed))(request)
    finally:
        handler.cleanup(keep=handed[0] if handed else None)


def _image_import(request: HttpRequest, handler: StagingUploadHandler, handed: list) -> HttpResponse:
    form = ImportForm(request.POST, request.FILES, user=request.user)
    valid = form.is_valid()
    if handler.too_big:  # the handler stopped reading: say why instead of "required"
        form.errors["file"] = form.error_class([f"the upload is larger than {settings.BERTH_MAX_UPLOAD_BYTES} "
                                                "bytes"])
        valid = False
    if not valid:
        if wants_json(request):
            return form_errors_json(form)
        return render(request, "images/list.html", _list_context(request, form), status=400)
    d = form.cleaned_data
    staged = getattr(d["file"], "staged_path", None)
    if staged is not None:
        handed.append(staged)  # the service owns it from here (deletes it on refusal)
    try:
        job = services.import_image(request.user, host=int(d["host"]), upload=str(staged) if staged else d["file"],
                                    ref=d["ref"], filename=getattr(d["file"], "name", ""),
                                    team=d["team"] or None, shared=d["shared"], request=request)
    except services.ServiceError as exc:
        if wants_json(request):
            return error_json(exc)
        add_service_error(form, exc)
        return render(request, "images/list.html", _list_context(request, form), status=exc.status)
    if wants_json(request):
        return JsonResponse({"job": events.job_event(job)}, status=202)
    messages.info(request, f"Importing {d['ref']} (job #{job.pk}); it appears below when done.")
    return redirect("images")


# A staged upload's path on the server (`…/uploads/<hex>.upload`), which older imports wrote into the history.
STAGED_PATH = re.compile(r"\S*/uploads/[0-9a-f]+\.upload")


@login_required
@require_POST
def image_load(request: HttpRequest) -> HttpResponse:
    """`docker load` from the dashboard: the archive's tags go to the user's (or the team's) name space."""
    form = LoadForm(request.POST, request.FILES, user=request.user)
    if not form.is_valid():
        if wants_json(request):
            return form_errors_json(form)
        return render(request, "images/list.html", _list_context(request, form), status=400)
    d = form.cleaned_data
    try:
        job = services.load_images(request.user, host=int(d["host"]), upload=d["file"], team=d["team"] or None,
                                   shared=d["shared"], request=request, filename=getattr(d["file"], "name", ""))
    except services.ServiceError as exc:
        if wants_json(request):
            return error_json(exc)
        add_service_error(form, exc)
        return render(request, "images/list.html", _list_context(request, form), status=exc.status)
    if wants_json(request):
        return JsonResponse({"job": events.job_event(job)}, status=202)
    messages.info(request, f"Loading {d['file'].name} (job #{job.pk}); its images appear below when done.")
    return redirect("images")


def _history(image: Image) -> list[dict[str, Any]]:
    history = (image.config or {}).get("history") or []
    return [{**h, "created_by": STAGED_PATH.sub("(upload)", str(h.get("created_by") or ""))}
            for h in history if isinstance(h, dict)]


def _origin(user, image: Image) -> Job | None:
    """The job that made this image (import, load, commit, pull, build), if the user may see it."""
    made = Q(kind__in=("image.import", "container.commit", "image.pull", "image.build"), result__image_id=image.pk)
    found = jobs_visible_to(user).filter(made, host=image.host).order_by("-created").first()
    if found is None:
        # A load lists the images it made (SQLite cannot look inside a JSON list): the latest loads that
        # ended after the row was made.
        loads = jobs_visible_to(user).filter(kind="image.load", host=image.host, state=Job.State.SUCCEEDED,
                                             finished__gte=image.created).order_by("-finished")[:50]
        found = next((j for j in loads if any(isinstance(i, dict) and i.get("image_id") == image.pk
                                              for i in (j.result or {}).get("images") or [])), None)
    if found is not None and found.kind == "container.commit" and str(found.target_id).isdigit():
        # Name the container it was committed from, while the user may still see it.
        found.container_name = permissions.visible_containers(user).filter(pk=int(found.target_id)) \
            .values_list("name", flat=True).first()
    return found


@login_required
def image_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = request.user
    image = visible_image_or_404(user, pk)
    origin = _origin(user, image)
    own = Q(target_type="image", target_id=str(pk)) | Q(pk=origin.pk if origin else None)
    jobs = job_rows(list(jobs_visible_to(user).filter(own)[:50]))
    allowed = {a.replace(".", "_"): permissions.can(user, a, image) for a in
               ("image.use", "image.save", "image.tag", "image.remove", "image.share")}
    context = {
        "image": image, "history": _history(image), "jobs": jobs, "origin": origin,
        "files": [j for j in jobs if j.kind == "image.save"][:10],
        "containers": selectors.pages.containers_using(user, image),
        "allowed": allowed, "tag_form": TagForm(), "save_form": SaveForm(),
        "share_form": ShareForm(user=user, initial={"team": image.team_id or "", "shared": image.shared}),
        "env": (image.config or {}).get("config", {}).get("Env") or [],
        "cmd": (image.config or {}).get("config", {}).get("Cmd"),
        "entrypoint": (image.config or {}).get("config", {}).get("Entrypoint"),
    }
    return render(request, "images/detail.html", context)


@login_required
@require_POST
def image_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    user = request.user
    image = visible_image_or_404(user, pk)
    if action not in ACTIONS:
        raise Http404("no such action")
    params: dict[str, Any] = {}
    if action == "save":
        params = {"format": request.POST.get("format") or "docker-archive"}
    elif action == "remove":
        params = {"force": request.POST.get("force") in ("1", "on", "true")}
    elif action == "tag":
        params = {"ref": request.POST.get("ref", "")}
    try:
        job = services.image_action(user, image, action, params=params, request=request)
    except services.ServiceError as exc:
        return refused(request, exc, "image-detail", pk=image.pk)
    text = f"{action.capitalize()} of {image.ref} queued as job #{job.pk}."
    if wants_json(request):
        return JsonResponse({"job": events.job_event(job), "message": text}, status=202)
    messages.info(request, text)
    if action == "remove":
        return redirect("images")
    return redirect(reverse("image-detail", args=[image.pk]) + f"?job={job.pk}")


@login_required
@require_POST
def image_share(request: HttpRequest, pk: int) -> HttpResponse:
    image = visible_image_or_404(request.user, pk)
    try:
        services.share_image(request.user, image, request.POST.get("team") or None,
                             request.POST.get("shared") in ("1", "on", "true"), request=request)
    except services.ServiceError as exc:
        return refused(request, exc, "image-detail", pk=image.pk)
    image.refresh_from_db()
    who = f"team {image.team.name}" if image.team else "no team"
    text = f"{image.ref} now belongs to {who}" + (" and is shared with everyone." if image.shared else ".")
    if wants_json(request):
        return JsonResponse({"message": text, "image": {"team": image.team.name if image.team else None,
                                                        "shared": "with everyone" if image.shared else "no"}})
    messages.info(request, text)
    return redirect("image-detail", pk=image.pk)


