"""One file on its way between the control plane and a host's worker (see containers/transfer.py).

The row is the secret's only home: `token` is never in a job's params or result, so a user who can read
their job cannot fetch or replace its file over the internal endpoint. Redis and the database are trusted
(a worker reads this row); HTTP is not."""

from __future__ import annotations

import secrets

from django.db import models


def new_token() -> str:
    return secrets.token_urlsafe(32)


class Transfer(models.Model):
    class Kind(models.TextChoices):
        UPLOAD = "upload"  # staged by the web server, fetched by the worker (GET), consumed (DELETE)
        DOWNLOAD = "download"  # made by the worker, pushed to the web server once (PUT)
        # A host's file for another host's job (a move's pack): pushed in parts (PUT ?offset=) by the sending
        # worker while the receiving worker already reads it (GET, containers/transfer_relay.py); an UPLOAD of the
        # receiving job once its last part is in.
        RELAY = "relay"

    id = models.UUIDField(primary_key=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    host = models.ForeignKey("containers.Host", on_delete=models.CASCADE, related_name="transfers")
    job = models.ForeignKey("containers.Job", null=True, blank=True, on_delete=models.CASCADE,
                            related_name="transfers")
    token = models.CharField(max_length=64, default=new_token)
    size = models.BigIntegerField(default=0)  # an upload's exact size (the worker takes no byte more)
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField()

    class Meta:
        app_label = "containers"
        indexes = [models.Index(fields=["job", "kind"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.pk} (job #{self.job_id})"
