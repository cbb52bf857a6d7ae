"""Dashboard pages of issue 15: Pull (a reference, a live progress bar), Build (paste a Containerfile or upload
a context, watch the log), Registries (saved credentials: the secret goes in, never out), Push (from an image's
page). Every change goes through containers/services/registries.py; static/js/registry.js follows the jobs."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from . import events, permissions, services
from .forms import _team_choices, add_service_error
from .models import Host
from .services import registries
from .views import error_json, form_errors_json, refused, visible_image_or_404, wants_json


class PullForm(forms.Form):
    ref = forms.CharField(label="Image reference", max_length=600,
                          help_text="nginx:1.25, ghcr.io/org/app:1, registry.local:5000/team/app@sha256:…")
    name = forms.CharField(required=False, max_length=400, label="Local name:tag",
                           help_text="Empty: the familiar name (host:port written host-port).")
    host = forms.ChoiceField()
    team = forms.ChoiceField(required=False)
    platform = forms.CharField(required=False, max_length=64, help_text="os/arch[/variant]; empty: the host's.")
    insecure = forms.BooleanField(required=False, label="Insecure registry (plain HTTP / unverified TLS)")

    def __init__(self, *args: Any, user, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["host"].choices = [(str(h.pk), h.name) for h in Host.objects.online()]
        self.fields["team"].choices = _team_choices(user, permissions.OPERATOR)


class BuildForm(forms.Form):
    ref = forms.CharField(label="Image name:tag", max_length=300)
    dockerfile = forms.CharField(required=False, label="Containerfile", max_length=registries.MAX_DOCKERFILE,
                                 widget=forms.Textarea(attrs={"rows": 12, "spellcheck": "false"}),
                                 help_text="Empty: the Containerfile or Dockerfile of the uploaded context.")
    context = forms.FileField(required=False, label="Build context (tar, tar.gz, tar.zst)",
                              help_text="Optional: the files COPY and ADD read.")
    build_args = forms.CharField(required=False, label="Build arguments",
                                 widget=forms.Textarea(attrs={"rows": 2}), help_text="One NAME=value a line.")
    host = forms.ChoiceField()
    team = forms.ChoiceField(required=False)
    no_cache = forms.BooleanField(required=False, label="Do not use the build cache")

    def __init__(self, *args: Any, user, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["host"].choices = [(str(h.pk), h.name) for h in Host.objects.online()]
        self.fields["team"].choices = _team_choices(user, permissions.OPERATOR)

    def clean_build_args(self) -> dict[str, str]:
        out = {}
        for line in (self.cleaned_data.get("build_args") or "").splitlines():
            if not line.strip():
                continue
            name, eq, value = line.strip().partition("=")
            if not eq or not name:
                raise forms.ValidationError(f"{line.strip()!r}: write NAME=value")
            out[name] = value
        return out


class CredentialForm(forms.Form):
    registry = forms.CharField(max_length=255, help_text="docker.io, ghcr.io, registry.local:5000")
    username = forms.CharField(max_length=255)
    password = forms.CharField(max_length=registries.MAX_SECRET, widget=forms.PasswordInput(render_value=False),
                               help_text="Or an access token. Stored encrypted; never shown again.")
    team = forms.ChoiceField(required=False, help_text="A team's credential needs the team's admin role.")
    insecure = forms.BooleanField(required=False, label="Insecure registry (plain HTTP / unverified TLS)")

    def __init__(self, *args: Any, user, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = _team_choices(user, permissions.ADMIN)


class PushForm(forms.Form):
    destination = forms.CharField(max_length=600, label="Push to",
                                  help_text="A registry reference with a tag, e.g. registry.local:5000/team/app:1")
    insecure = forms.BooleanField(required=False, label="Insecure registry")


def _job_answer(request: HttpRequest, job, note: str, back: str) -> HttpResponse:
    if wants_json(request):
        return JsonResponse({"job": events.job_event(job), "message": f"{note}: job #{job.pk} queued."}, status=202)
    messages.info(request, f"{note} (job #{job.pk}).")
    return redirect(back)


def _refusal(request, form, exc, template: str, context: dict[str, Any]) -> HttpResponse:
    if wants_json(request):
        return error_json(exc)
    add_service_error(form, exc)
    return render(request, template, context, status=exc.status)


@login_required
def pull_page(request: HttpRequest) -> HttpResponse:
    form = PullForm(request.POST or None, user=request.user)
    if request.method != "POST":
        return render(request, "images/pull.html", {"form": form})
    if not form.is_valid():
        return form_errors_json(form) if wants_json(request) else render(request, "images/pull.html",
                                                                         {"form": form}, status=400)
    d = form.cleaned_data
    try:
        job = registries.pull_image(request.user, host=int(d["host"]), ref=d["ref"], name=d["name"] or None,
                                    team=d["team"] or None, platform=d["platform"] or None, insecure=d["insecure"],
                                    request=request)
    except services.ServiceError as exc:
        return _refusal(request, form, exc, "images/pull.html", {"form": form})
    return _job_answer(request, job, f"Pulling {d['ref']}", "images")


@login_required
def build_page(request: HttpRequest) -> HttpResponse:
    form = BuildForm(request.POST or None, request.FILES or None, user=request.user)
    if request.method != "POST":
        return render(request, "images/build.html", {"form": form})
    if not form.is_valid():
        return form_errors_json(form) if wants_json(request) else render(request, "images/build.html",
                                                                         {"form": form}, status=400)
    d = form.cleaned_data
    try:
        job = registries.build_image(request.user, host=int(d["host"]), ref=d["ref"], upload=d["context"],
                                     dockerfile=d["dockerfile"] or None, team=d["team"] or None,
                                     build_args=d["build_args"], no_cache=d["no_cache"], request=request)
    except services.ServiceError as exc:
        return _refusal(request, form, exc, "images/build.html", {"form": form})
    return _job_answer(request, job, f"Building {d['ref']}", "images")


@login_required
def registries_page(request: HttpRequest) -> HttpResponse:
    form = CredentialForm(request.POST or None, user=request.user)
    context = {"form": form, "credentials": registries.visible_credentials(request.user)}
    if request.method != "POST":
        return render(request, "registries/list.html", context)
    if not form.is_valid():
        return form_errors_json(form) if wants_json(request) else render(request, "registries/list.html", context,
                                                                         status=400)
    d = form.cleaned_data
    try:
        row = registries.save_credential(request.user, registry=d["registry"], username=d["username"],
                                         password=d["password"], team=d["team"] or None, insecure=d["insecure"],
                                         request=request)
    except services.ServiceError as exc:
        return _refusal(request, form, exc, "registries/list.html", context)
    messages.info(request, f"Saved the credential for {row.registry}.")
    return redirect("registries")


@login_required
@require_POST
def registry_delete(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        registries.delete_credential(request.user, pk, request=request)
    except services.ServiceError as exc:
        return refused(request, exc, "registries")
    messages.info(request, "Credential removed.")
    return redirect("registries")


@login_required
@require_POST
def image_push(request: HttpRequest, pk: int) -> HttpResponse:
    image = visible_image_or_404(request.user, pk)
    form = PushForm(request.POST)
    if not form.is_valid():
        return form_errors_json(form) if wants_json(request) else redirect("image-detail", pk=pk)
    try:
        job = registries.push_image(request.user, image, destination=form.cleaned_data["destination"],
                                    insecure=form.cleaned_data["insecure"], request=request)
    except services.ServiceError as exc:
        return refused(request, exc, "image-detail", pk=pk)
    return _job_answer(request, job, f"Pushing {image.ref}", f"/images/{pk}/")
