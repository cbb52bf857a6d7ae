"""The container page's "Move or copy to another host" (issue 18): a host picker posting here; the service
(containers/services/move.py) decides, and the user lands on the job's page (a moved container leaves its
host once the job is done, so its own page would vanish under the user)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from . import services
from .models import Host
from .views import refused, visible_container_or_404


def send_hosts(container) -> list[Host]:
    """The hosts a container may be sent to: every other host, cordoned ones shown but refused by the service."""
    return list(Host.objects.exclude(pk=container.host_id).order_by("name"))


@login_required
@require_POST
def container_send(request: HttpRequest, pk: int) -> HttpResponse:
    container = visible_container_or_404(request.user, pk)
    copy = request.POST.get("how") == "copy"
    try:
        made, job = services.send_container(request.user, container, request.POST.get("host", ""), copy=copy,
                                            request=request)
    except services.ServiceError as exc:
        return refused(request, exc, "container-detail", pk=container.pk)
    messages.info(request, f"{'Copy' if copy else 'Move'} of {container.name} to host {made.host.name} queued as "
                           f"job #{job.pk}.")
    return redirect("job-detail", pk=job.pk)
