"""What every API view shares: throttling before 401, lenient negotiation for file answers, the
202 Job answer, the object an action names, the host a request names."""

from __future__ import annotations

from typing import Any

from django.db.models import Count
from rest_framework import status
from rest_framework.exceptions import AuthenticationFailed, NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response

from .. import audit, bounds, permissions, services
from ..models import Host, Image, Job
from . import serializers as s


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not services.IDEMPOTENCY_KEY.fullmatch(key):  # an empty or blank one too
        raise services.ServiceError("invalid", "Idempotency-Key must be 1 to 150 printable ASCII characters "
                                    "without spaces", field="idempotency_key")
    return key


def _job_response(job: Job, request: Request) -> Response:
    return Response(s.JobSerializer(job, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)



def _object_for_action(model, pk: Any, request: Request, kind: str):
    """The row an action names, visible or not: the service decides and audits. Ids that do not exist
    answer exactly like invisible ones."""
    ident = bounds.as_id(pk, model)
    obj = model.objects.select_related("host").filter(pk=ident).first() if ident else None
    if obj is None:
        audit.record(request, request.user, kind, (model._meta.model_name, str(pk)[:100]), "denied",
                     {"code": "not_found"}, status_code=404)
        raise services.ServiceError("not_found", f"no such {model._meta.model_name}")
    return obj


def pick_host(user, host_value: Any, image_value: Any) -> Host:
    """The host a user names; else the host of an image given by id; else the least loaded online host."""
    if host_value not in (None, ""):
        return services._as_host(host_value)
    if isinstance(image_value, int) or (isinstance(image_value, str) and image_value.isascii() and image_value.isdigit()):
        image = permissions.visible_images(user).filter(pk=bounds.as_id(image_value, Image) or 0).first()
        if image is None:
            raise services.ServiceError("no_such_image", f"no image #{image_value}", field="image")
        return image.host
    host = (Host.objects.online().annotate(n=Count("containers")).order_by("n", "name").first()
            or Host.objects.order_by("name").first())
    if host is None:
        raise services.ServiceError("invalid", "there is no host to run on", field="host")
    return host


class LenientNegotiation(DefaultContentNegotiation):
    """For endpoints answering with a file or text: an Accept of text/plain or application/x-tar must not
    turn into 406 just because the errors and the 202 Job are JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            return renderers[0], renderers[0].media_type


class ThrottleFirst:
    """Signed-out clients and bad tokens hit the anonymous rate limit before being told 401, so
    guessing tokens is throttled too (DRF checks permissions before throttles)."""

    def initial(self, request: Request, *args, **kwargs) -> None:
        try:
            user = request.user
        except AuthenticationFailed:
            self.check_throttles(request)  # the failed attempt leaves the request anonymous
            raise
        if not user.is_authenticated:
            self.check_throttles(request)
        super().initial(request, *args, **kwargs)


def _valid(serializer_class, request: Request) -> dict[str, Any]:
    data = request.data if request.data is not None else {}
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
