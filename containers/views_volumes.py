"""Volume pages: the volumes a user may see (own and team volumes), create, and remove.

Changes go through containers/services/volumes.py; a volume the user may not see answers 404, whether it
exists or not."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from . import events, permissions, selectors
from .forms import _team_choices, add_service_error
from .models import Host, Volume
from .services import ServiceError
from .services import volumes as services_volumes
from .views import error_json, form_errors_json, refused, wants_json


class VolumeForm(forms.Form):
    name = forms.CharField(max_length=services_volumes.NAME_MAX,
                           help_text="Unique among your volumes (or the team's) on the host.")
    host = forms.ChoiceField(help_text="Online hosts only.")
    team = forms.ChoiceField(required=False, help_text="Teams where you are an operator or admin.")
    size = forms.CharField(required=False, max_length=32,
                           help_text="Most it may hold, e.g. 10g (empty: your team's default).")

    def __init__(self, *args: Any, user, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["host"].choices = [(str(h.pk), h.name) for h in Host.objects.online()]
        self.fields["team"].choices = _team_choices(user, permissions.OPERATOR)


def _context(request: HttpRequest, form: VolumeForm | None = None) -> dict[str, Any]:
    user = request.user
    rows = selectors.pages.volume_rows(user)
    for row in rows:
        row.can_remove = permissions.can(user, "volume.remove", row)
        row.used_by = [c for c in row.containers.all() if permissions.can(user, "view", c)]
    return {"volumes": rows, "form": form or VolumeForm(user=user)}


@login_required
def volume_list(request: HttpRequest) -> HttpResponse:
    return render(request, "volumes/list.html", _context(request))


@login_required
@require_POST
def volume_create(request: HttpRequest) -> HttpResponse:
    form = VolumeForm(request.POST, user=request.user)
    if not form.is_valid():
        if wants_json(request):
            return form_errors_json(form)
        return render(request, "volumes/list.html", _context(request, form), status=400)
    d = form.cleaned_data
    try:
        volume, job = services_volumes.create_volume(request.user, host=int(d["host"]), name=d["name"],
                                                     team=d["team"] or None, size=d["size"] or None,
                                                     request=request)
    except ServiceError as exc:
        if wants_json(request):
            return error_json(exc)
        add_service_error(form, exc)
        return render(request, "volumes/list.html", _context(request, form), status=exc.status)
    if wants_json(request):
        return JsonResponse({"job": events.job_event(job)}, status=202)
    messages.info(request, f"Creating volume {d['name']} (job #{job.pk}).")
    return redirect("volumes")


@login_required
@require_POST
def volume_remove(request: HttpRequest, pk: int) -> HttpResponse:
    # Any row by id: the service answers "no such volume" for one the user may not see (and audits it).
    volume = Volume.objects.select_related("host").filter(pk=pk).first()
    try:
        if volume is None:
            raise ServiceError("not_found", "no such volume")
        job = services_volumes.remove_volume(request.user, volume, force=request.POST.get("force") in ("1", "on"),
                                             request=request)
    except ServiceError as exc:
        return refused(request, exc, "volumes")
    text = f"Removing volume {volume.name} (job #{job.pk})."
    if wants_json(request):
        return JsonResponse({"job": events.job_event(job), "message": text}, status=202)
    messages.info(request, text)
    return redirect("volumes")
