"""API tokens: `Authorization: Bearer <token>` or `Token <token>`. Only a SHA-256 of a token is stored;
the token itself is shown once, when it is made."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from .. import audit
from ..models import ApiToken

TOKEN_PREFIX = "berth_"
PREFIX_LEN = 12  # characters kept in clear, to recognise a token in lists
LAST_USED_EVERY = timedelta(seconds=5)  # last_used is refreshed at most this often (one write per burst)
SCHEMES = ("bearer", "token")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(user, name: str) -> tuple[ApiToken, str]:
    """A new token for `user`: (the row, the token text — the only time it exists in clear)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken.objects.create(user=user, name=name, prefix=token[:PREFIX_LEN], key_hash=hash_token(token))
    return row, token


def user_for_token(token: str, request=None):
    """(user, ApiToken) of a valid token, else AuthenticationFailed (recorded in the audit log)."""
    row = ApiToken.objects.select_related("user").filter(key_hash=hash_token(token)).first()
    problem = None
    if row is None:
        problem = "invalid token"
    elif row.revoked is not None:
        problem = "this token was revoked"
    elif not row.user.is_active:
        problem = "the user of this token is inactive"
    if problem:
        audit.record(request, row.user if row else None, "auth.token",
                     ("apitoken", row.pk if row else "", token[:PREFIX_LEN] if row else ""), "denied",
                     {"reason": problem}, status_code=401)
        raise exceptions.AuthenticationFailed(problem)
    now = timezone.now()
    if row.last_used is None or now - row.last_used >= LAST_USED_EVERY:
        ApiToken.objects.filter(pk=row.pk).update(last_used=now)
        row.last_used = now
    return row.user, row


class TokenAuthentication(authentication.BaseAuthentication):
    """DRF authentication by API token; `request.auth` is the ApiToken row."""

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode("latin-1").lower() not in SCHEMES:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("the Authorization header must be '<Bearer|Token> <token>'")
        try:
            token = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("invalid token") from None
        return user_for_token(token, request)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    """How the schema describes token authentication (`Token <t>` works as well)."""

    target_class = "containers.api.auth.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "An API token from /tokens/: `Authorization: Bearer <token>` or `Token <token>`"}
