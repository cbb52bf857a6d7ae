"""Saved registry credentials (issue 15): a user's own, or a team's. The secret is encrypted at rest
(containers/registry_secrets.py) and never leaves the control plane except to the host job that uses it, which
reads it from this row by id: job params, logs, audit details and API responses never carry it."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class RegistryCredential(models.Model):
    registry = models.CharField(max_length=255)  # the registry's domain as Docker names it: docker.io, ghcr.io, host:port
    username = models.CharField(max_length=255)
    secret = models.TextField()  # Fernet token of the password or access token
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.CASCADE,
                              related_name="registry_credentials")
    team = models.ForeignKey("containers.Team", null=True, blank=True, on_delete=models.CASCADE,
                             related_name="registry_credentials")
    insecure = models.BooleanField(default=False)  # plain HTTP / unverified TLS allowed for this registry
    created = models.DateTimeField(default=timezone.now)
    last_used = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["registry", "username"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "registry"], condition=models.Q(team__isnull=True),
                                    name="registry_credential_one_per_user"),
            models.UniqueConstraint(fields=["team", "registry"], condition=models.Q(team__isnull=False),
                                    name="registry_credential_one_per_team"),
        ]

    def __str__(self) -> str:
        return f"{self.username}@{self.registry}"

    def __repr__(self) -> str:
        return f"<RegistryCredential {self.pk} {self}>"
