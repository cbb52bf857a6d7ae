"""/api/v1/teams: teams, their members and limits."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from .. import audit, bounds, permissions, selectors, services
from ..models import Team, TeamMembership
from . import limits as api_limits
from . import serializers as s
from .common import ThrottleFirst, _valid
from .schema import PAGE, errors


@extend_schema_view(
    list=extend_schema(summary="Teams you belong to (all for superusers)", parameters=PAGE,
                       responses={200: s.TeamSerializer(many=True), **errors(400, 404)}),
    retrieve=extend_schema(summary="A team", responses={200: s.TeamSerializer, **errors(404)}),
)
class TeamViewSet(ThrottleFirst, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = s.TeamSerializer
    lookup_value_regex = "[^/]+"  # any id reaches the view, which answers 404 in JSON
    parser_classes = [JSONParser]

    def get_queryset(self):
        return selectors.teams(self.request.user)

    @extend_schema(summary="Create a team (superusers)", request=s.TeamCreateSerializer,
                   responses={201: s.TeamSerializer, **errors(400, 403, 409)})
    def create(self, request: Request) -> Response:
        if not request.user.is_superuser:
            audit.record(request, request.user, "team.create", None, "denied", {"code": "forbidden"},
                         status_code=403)
            raise services.ServiceError("forbidden", "only superusers create teams")
        body = _valid(s.TeamCreateSerializer, request)
        if Team.objects.filter(name=body["name"]).exists():
            raise services.ServiceError("conflict", f"a team named {body['name']} exists already", field="name")
        team = Team.objects.create(name=body["name"])
        audit.record(request, request.user, "team.create", team, "ok", status_code=201)
        return Response(s.TeamSerializer(team, context={"request": request}).data, status=201)

    def _team(self, pk, kind: str, action_name: str) -> Team:
        team = Team.objects.filter(pk=ident).first() if (ident := bounds.as_id(pk, Team)) else None
        try:
            permissions.check(self.request.user, action_name, team)
        except permissions.NotVisible:
            audit.record(self.request, self.request.user, kind, ("team", str(pk)[:100]), "denied",
                         {"code": "not_found"}, status_code=404)
            raise services.ServiceError("not_found", "no such team") from None
        except permissions.Forbidden:
            audit.record(self.request, self.request.user, kind, team, "denied", {"code": "forbidden"},
                         status_code=403)
            raise services.ServiceError("forbidden", "managing members needs the admin role") from None
        return team

    @extend_schema(methods=["GET"], summary="Members of a team", responses={200: s.MemberSerializer(many=True),
                                                                           **errors(404)})
    @extend_schema(methods=["POST"], summary="Add a member (team admins)", request=s.MemberAddSerializer,
                   responses={201: s.MemberSerializer, **errors(400, 403, 404, 409)})
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def members(self, request: Request, pk=None) -> Response:
        if request.method == "GET":
            team = self._team(pk, "team.members", "view")
            rows = TeamMembership.objects.filter(team=team).select_related("user").order_by("user__username")
            return Response(s.MemberSerializer(rows, many=True).data)
        team = self._team(pk, "team.member.add", "team.manage")
        body = _valid(s.MemberAddSerializer, request)
        user = get_user_model().objects.filter(username=body["username"]).first()
        if user is None:
            raise services.ServiceError("no_such_user", f"no user named {body['username']}", field="username",
                                        status=404)
        if TeamMembership.objects.filter(team=team, user=user).exists():
            raise services.ServiceError("conflict", f"{user.username} is a member already", field="username")
        row = TeamMembership.objects.create(team=team, user=user, role=body["role"])
        audit.record(request, request.user, "team.member.add", team, "ok",
                     {"user": row.user.username, "role": row.role}, status_code=201)
        return Response(s.MemberSerializer(row).data, status=201)

    @extend_schema(methods=["GET"], summary="A team's container limits", request=None,
                   responses={200: api_limits.TeamLimitsPayloadSerializer, **errors(404)})
    @extend_schema(methods=["PUT", "PATCH"], summary="Set a team's limits (superusers; PUT resets fields not given)",
                   request=api_limits.TeamLimitsSerializer,
                   responses={200: api_limits.TeamLimitsPayloadSerializer, **errors(400, 403, 404)})
    @action(detail=True, methods=["get", "put", "patch"], url_path="limits", pagination_class=None)
    def limits(self, request: Request, pk=None) -> Response:
        team = self._team(pk, "team.limits", "view")
        if request.method != "GET":
            values = _valid(api_limits.TeamLimitsSerializer, request)
            services.set_team_limits(request.user, team, values, replace=request.method == "PUT", request=request)
        return Response(api_limits.payload(team))

    @extend_schema(methods=["PATCH"], summary="Change a member's role (team admins)",
                   request=s.MemberRoleSerializer, responses={200: s.MemberSerializer, **errors(400, 403, 404, 409)},
                   parameters=[OpenApiParameter("user_id", OpenApiTypes.INT, OpenApiParameter.PATH)])
    @extend_schema(methods=["DELETE"], summary="Remove a member (team admins)", request=None,
                   responses={204: None, **errors(403, 404, 409)},
                   parameters=[OpenApiParameter("user_id", OpenApiTypes.INT, OpenApiParameter.PATH)])
    @action(detail=True, methods=["patch", "delete"], url_path=r"members/(?P<user_id>[^/]+)")
    def member(self, request: Request, pk=None, user_id=None) -> Response:
        kind = "team.member.remove" if request.method == "DELETE" else "team.member.role"
        team = self._team(pk, kind, "team.manage")
        user_pk = bounds.as_id(user_id, get_user_model())
        row = (TeamMembership.objects.filter(team=team, user_id=user_pk).select_related("user").first()
               if user_pk else None)
        if row is None:
            raise services.ServiceError("not_found", "no such member")
        new_role = _valid(s.MemberRoleSerializer, request)["role"] if request.method == "PATCH" else None
        if row.role == "admin" and new_role != "admin":
            if not TeamMembership.objects.filter(team=team, role="admin").exclude(pk=row.pk).exists():
                raise services.ServiceError("conflict", "a team keeps at least one admin")
        if request.method == "DELETE":
            row.delete()
            audit.record(request, request.user, kind, team, "ok", {"user": row.user.username}, status_code=204)
            return Response(status=204)
        before = row.role
        row.role = new_role
        row.save(update_fields=["role"])
        audit.record(request, request.user, kind, team, "ok",
                     {"user": row.user.username, "before": before, "after": new_role}, status_code=200)
        return Response(s.MemberSerializer(row).data)
