"""Dashboard pages of the account: API tokens (/tokens/) and the audit log (/audit/)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from . import audit, permissions, selectors, services
from .api.auth import create_token
from .models import ApiToken

AUDIT_PAGE_SIZE = 100


@login_required
def tokens(request: HttpRequest) -> HttpResponse:
    """List the user's tokens; POST makes one and shows it on this response only."""
    new_token = None
    error = ""
    if request.method == "POST":
        name = (request.POST.get("name") or "").strip()
        if not name or len(name) > 100:
            error = "Give the token a name (at most 100 characters)."
        else:
            row, new_token = create_token(request.user, name)
            audit.record(request, request.user, "token.create", row, "ok", {"name": name}, status_code=201)
    context = {"tokens": permissions.visible_tokens(request.user), "new_token": new_token, "error": error,
               "name": request.POST.get("name", "") if error else ""}
    response = render(request, "tokens/tokens.html", context, status=400 if error else 200)
    response["Cache-Control"] = "no-store"  # the page that shows a new token must not be cached
    return response


@login_required
@require_POST
def revoke_token(request: HttpRequest, pk: int) -> HttpResponse:
    row = get_object_or_404(permissions.visible_tokens(request.user), pk=pk)
    if row.revoked is None:
        ApiToken.objects.filter(pk=row.pk).update(revoked=timezone.now())
        audit.record(request, request.user, "token.revoke", row, "ok", {"name": row.name}, status_code=200)
        messages.info(request, f"Token {row.name} ({row.prefix}…) revoked.")
    return redirect("tokens")


@login_required
def audit_list(request: HttpRequest) -> HttpResponse:
    """Audit events the user may read (team admins: their teams'; superusers: all), filterable."""
    error = ""
    try:
        qs = selectors.audit_events(request.user, request.GET, strict=False)
    except services.ServiceError as exc:
        error = exc.message
        qs = selectors.audit_events(request.user).none()
    page = Paginator(qs, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "page": page, "events": page.object_list, "error": error, "filters": request.GET,
        "query": query.urlencode(), "results": audit.RESULTS, "teams": permissions.visible_teams(request.user),
    }
    return render(request, "audit/audit.html", context, status=400 if error else 200)
