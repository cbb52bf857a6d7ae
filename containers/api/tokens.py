"""/api/v1/tokens: a user's API tokens (create shows it once; revoke)."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from .. import audit, bounds, selectors, services
from ..models import ApiToken
from . import auth
from . import serializers as s
from .common import ThrottleFirst, _valid
from .schema import PAGE, errors


@extend_schema_view(
    list=extend_schema(summary="Your API tokens", parameters=PAGE,
                       responses={200: s.TokenSerializer(many=True), **errors(400, 404)}),
    retrieve=extend_schema(summary="One of your API tokens", responses={200: s.TokenSerializer, **errors(404)}),
)
class TokenViewSet(ThrottleFirst, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = s.TokenSerializer
    lookup_value_regex = "[^/]+"  # any id reaches the view, which answers 404 in JSON
    parser_classes = [JSONParser]

    def get_queryset(self):
        return selectors.live_tokens(self.request.user)  # revoked: gone as far as the API goes

    @extend_schema(summary="Create a token (the response shows it once)", request=s.TokenCreateSerializer,
                   responses={201: s.TokenCreatedSerializer, **errors(400)})
    def create(self, request: Request) -> Response:
        body = _valid(s.TokenCreateSerializer, request)
        row, token = auth.create_token(request.user, body["name"])
        audit.record(request, request.user, "token.create", row, "ok", {"name": row.name}, status_code=201)
        data = dict(s.TokenSerializer(row).data, token=token)
        return Response(data, status=201)

    @extend_schema(summary="Revoke a token (then gone: GET and DELETE answer 404)", request=None,
                   responses={200: s.TokenSerializer, **errors(404)})
    def destroy(self, request: Request, pk=None) -> Response:
        row = ApiToken.objects.filter(pk=ident).first() if (ident := bounds.as_id(pk, ApiToken)) else None
        # revoke once: the update that sets `revoked` is the one that answers 200
        done = row is not None and row.user_id == request.user.pk and ApiToken.objects.filter(
            pk=row.pk, revoked__isnull=True).update(revoked=timezone.now())
        if not done:
            audit.record(request, request.user, "token.revoke", ("apitoken", str(pk)[:100]), "denied",
                         {"code": "not_found"}, status_code=404)
            raise services.ServiceError("not_found", "no such token")
        row.refresh_from_db()
        audit.record(request, request.user, "token.revoke", row, "ok", {"name": row.name}, status_code=200)
        return Response(s.TokenSerializer(row).data)
