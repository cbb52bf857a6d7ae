"""Network pages: the networks a user may see (own and team networks) with their containers, create, remove.

Changes go through containers/services/networks.py; a network the user may not see answers 404, whether it
exists or not."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from . import events, permissions
from .forms import _team_choices, add_service_error
from .models import Host, Network
from .services import ServiceError
from .services import networks as services_networks
from .views import error_json, form_errors_json, refused, wants_json

PAGE_SIZE = 500


class NetworkForm(forms.Form):
    name = forms.CharField(max_length=48, help_text="Unique among your networks (or the team's) on the host.")
    host = forms.ChoiceField(help_text="Online hosts only.")
    team = forms.ChoiceField(required=False, help_text="Teams where you are an operator or admin.")
    subnet = forms.CharField(required=False, max_length=43, help_text="e.g. 10.90.1.0/24 (empty: the host picks "
                                                                      "a free /24).")
    gateway = forms.CharField(required=False, max_length=45, help_text="Empty: the subnet's first address.")
    internal = forms.BooleanField(required=False, help_text="No way out of the network.")

    def __init__(self, *args: Any, user, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["host"].choices = [(str(h.pk), h.name) for h in Host.objects.online()]
        self.fields["team"].choices = _team_choices(user, permissions.OPERATOR)


def _context(request: HttpRequest, form: NetworkForm | None = None) -> dict[str, Any]:
    user = request.user
    rows = list(permissions.visible_networks(user).prefetch_related("containers")
                .order_by("name", "host__name", "-created")[:PAGE_SIZE])
    for row in rows:
        row.can_remove = permissions.can(user, "network.remove", row)
        row.members = []
        for c in row.containers.all():
            if permissions.can(user, "view", c):
                att = ((c.network or {}).get("networks") or {}).get(row.engine_name) or {}
                row.members.append({"container": c, "ip": att.get("ip")})
    return {"networks": rows, "form": form or NetworkForm(user=user)}


@login_required
def network_list(request: HttpRequest) -> HttpResponse:
    return render(request, "networks/list.html", _context(request))


@login_required
@require_POST
def network_create(request: HttpRequest) -> HttpResponse:
    form = NetworkForm(request.POST, user=request.user)
    if not form.is_valid():
        if wants_json(request):
            return form_errors_json(form)
        return render(request, "networks/list.html", _context(request, form), status=400)
    d = form.cleaned_data
    try:
        net, job = services_networks.create_network(request.user, host=int(d["host"]), name=d["name"],
                                                    team=d["team"] or None, subnet=d["subnet"] or None,
                                                    gateway=d["gateway"] or None, internal=d["internal"],
                                                    request=request)
    except ServiceError as exc:
        if wants_json(request):
            return error_json(exc)
        add_service_error(form, exc)
        return render(request, "networks/list.html", _context(request, form), status=exc.status)
    if wants_json(request):
        return JsonResponse({"job": events.job_event(job)}, status=202)
    messages.info(request, f"Creating network {d['name']} (job #{job.pk}).")
    return redirect("networks")


@login_required
@require_POST
def network_remove(request: HttpRequest, pk: int) -> HttpResponse:
    net = Network.objects.select_related("host").filter(pk=pk).first()
    try:
        if net is None:
            raise ServiceError("not_found", "no such network")
        job = services_networks.remove_network(request.user, net, force=request.POST.get("force") in ("1", "on"),
                                               request=request)
    except ServiceError as exc:
        return refused(request, exc, "networks")
    text = f"Removing network {net.name} (job #{job.pk})."
    if wants_json(request):
        return JsonResponse({"job": events.job_event(job), "message": text}, status=202)
    messages.info(request, text)
    return redirect("networks")
