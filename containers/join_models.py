"""Join tokens (issue 18): what lets a new machine's agent register as a host. An admin makes one; only a
SHA-256 of it is kept (as for API tokens), the token itself is shown once."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class JoinToken(models.Model):
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, db_index=True)  # first characters, to recognise a token in lists
    key_hash = models.CharField(max_length=64, unique=True)  # sha256 hex of the whole token
    # The only host name this token may join as ("" = the name the agent gives).
    host_name = models.CharField(max_length=200, blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="join_tokens")
    created = models.DateTimeField(default=timezone.now)
    expires = models.DateTimeField(null=True, blank=True)  # joining refused after; joined hosts keep working
    last_used = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)  # joining refused, and joined hosts' workers too

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def expired(self) -> bool:
        return self.expires is not None and self.expires <= timezone.now()

    @property
    def status(self) -> str:
        return "revoked" if self.revoked else "expired" if self.expired else "active"
