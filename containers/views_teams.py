"""Teams pages: the teams you belong to (all for superusers), a team's members and roles. Team admins add,
re-role and remove members; superusers make teams. Every change goes through services/team_members.py."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from . import bounds, permissions
from .models import Team, TeamMembership
from .services import ServiceError
from .services import team_members as svc
from .views import error_json, wants_json


def _visible_team(user, pk: int) -> Team:
    team = permissions.visible_teams(user).filter(pk=pk).first() if bounds.as_id(pk, Team) else None
    if team is None:
        raise Http404("no such team")
    return team


@login_required
def team_list(request: HttpRequest) -> HttpResponse:
    user = request.user
    teams = list(permissions.visible_teams(user).annotate(members=Count("memberships")).order_by("name"))
    for team in teams:
        team.my_role = permissions.role_in(user, team.pk) or ("superuser" if user.is_superuser else "")
    return render(request, "teams/list.html", {"teams": teams, "can_create": user.is_superuser})


def _answer(request: HttpRequest, text: str, where: str, **kwargs) -> HttpResponse:
    if wants_json(request):
        return JsonResponse({"message": text})
    messages.info(request, text)
    return redirect(where, **kwargs)


def _refused(request: HttpRequest, exc: ServiceError, where: str, **kwargs) -> HttpResponse:
    if exc.status == 404:
        raise Http404(exc.message)
    if wants_json(request):
        return error_json(exc)
    messages.error(request, exc.message)
    return redirect(where, **kwargs)


@login_required
@require_POST
def team_create(request: HttpRequest) -> HttpResponse:
    try:
        team = svc.create_team(request.user, request.POST.get("name", ""), request=request)
    except ServiceError as exc:
        return _refused(request, exc, "teams")
    return _answer(request, f"Team {team.name} made; you are its admin.", "team-detail", pk=team.pk)


@login_required
def team_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = request.user
    team = _visible_team(user, pk)
    members = list(TeamMembership.objects.filter(team=team).select_related("user").order_by("user__username"))
    context = {"team": team, "members": members, "roles": svc.ROLES,
               "can_manage": permissions.can(user, "team.manage", team)}
    return render(request, "teams/detail.html", context)


@login_required
@require_POST
def team_member_add(request: HttpRequest, pk: int) -> HttpResponse:
    team = _visible_team(request.user, pk)
    try:
        row = svc.add_member(request.user, team, request.POST.get("username", ""), request.POST.get("role", ""),
                             request=request)
    except ServiceError as exc:
        return _refused(request, exc, "team-detail", pk=team.pk)
    return _answer(request, f"{row.user.username} added to {team.name} as {row.role}.", "team-detail", pk=team.pk)


@login_required
@require_POST
def team_member_change(request: HttpRequest, pk: int, user_id: int) -> HttpResponse:
    """POST role=<role> changes the member's role; POST remove=1 removes the member."""
    team = _visible_team(request.user, pk)
    try:
        if request.POST.get("remove"):
            svc.remove_member(request.user, team, user_id, request=request)
            text = f"Member removed from {team.name}."
        else:
            row = svc.set_role(request.user, team, user_id, request.POST.get("role", ""), request=request)
            text = f"{row.user.username} is now {row.role} in {team.name}."
    except ServiceError as exc:
        return _refused(request, exc, "team-detail", pk=team.pk)
    return _answer(request, text, "team-detail", pk=team.pk)
