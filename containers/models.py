"""What Berth knows and what users asked for: hosts, images, containers, jobs, teams.

The host's state root is the truth about what runs there; these rows are the control plane's record.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from workers.engine.containers import states


def new_engine_id() -> str:
    """A Docker-style 64-hex container id, used under the host's state root and by the runtime."""
    return secrets.token_hex(32)


class Team(models.Model):
    name = models.CharField(max_length=150, unique=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TeamLimits(models.Model):
    """A team's container limits, set by an admin; an empty field takes the system value (BERTH_LIMITS)."""

    team = models.OneToOneField(Team, on_delete=models.CASCADE, related_name="limits")
    default_pids_limit = models.PositiveIntegerField(null=True, blank=True)
    max_pids_limit = models.PositiveIntegerField(null=True, blank=True)
    default_memory = models.PositiveBigIntegerField(null=True, blank=True, help_text="bytes")
    max_memory = models.PositiveBigIntegerField(null=True, blank=True, help_text="bytes")
    default_cpus = models.FloatField(null=True, blank=True)
    max_cpus = models.FloatField(null=True, blank=True)
    default_disk = models.PositiveBigIntegerField(null=True, blank=True, help_text="bytes a container may write")
    max_disk = models.PositiveBigIntegerField(null=True, blank=True, help_text="bytes")
    default_volume_size = models.PositiveBigIntegerField(null=True, blank=True, help_text="bytes")
    max_volume_size = models.PositiveBigIntegerField(null=True, blank=True, help_text="bytes")
    max_expanded_upload = models.PositiveBigIntegerField(null=True, blank=True,
                                                         help_text="bytes an import/load may decompress to")

    class Meta:
        verbose_name_plural = "team limits"

    def __str__(self) -> str:
        return f"limits of {self.team}"


class TeamMembership(models.Model):
    class Role(models.TextChoices):
        VIEWER = "viewer"
        OPERATOR = "operator"
        ADMIN = "admin"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="team_memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="unique_team_member")]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


class HostQuerySet(models.QuerySet):
    def online(self) -> HostQuerySet:
        return self.filter(last_heartbeat__gte=Host.offline_cutoff())


class Host(models.Model):
    """A machine running one agent: a Celery worker on queue `host.<name>` that heartbeats its facts."""

    name = models.CharField(max_length=200, unique=True)
    facts = models.JSONField(default=dict, blank=True)
    kernel = models.CharField(max_length=200, blank=True)
    cgroup_version = models.CharField(max_length=16, blank=True)  # "v1", "v2" or "hybrid"
    cpus = models.PositiveIntegerField(default=0)
    memory_bytes = models.BigIntegerField(default=0)
    runtimes = models.JSONField(default=list, blank=True)
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    # {"ssd": "", "zone": "a"}: set at join (--labels) and by admins; placement will match on them.
    labels = models.JSONField(default=dict, blank=True)
    cordoned = models.BooleanField(default=False)  # takes no new containers
    draining = models.BooleanField(default=False)  # cordoned so that what runs here can be moved off
    # The join token its agent joined with; None for the control plane's own host (make run). Its revocation
    # refuses this host's worker at the next heartbeat. PROTECT: a token is revoked, never deleted under a host.
    join_token = models.ForeignKey("containers.JoinToken", null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="hosts")
    # Seconds a queued job waits while this host is offline before it fails (containers/offline.py); None: the
    # BERTH_OFFLINE_JOB_TIMEOUT setting; 0: wait until the host comes back.
    offline_job_timeout = models.PositiveIntegerField(null=True, blank=True)

    objects = HostQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def offline_cutoff():
        return timezone.now() - timedelta(seconds=settings.BERTH_HOST_OFFLINE_AFTER)

    @property
    def online(self) -> bool:
        return self.last_heartbeat is not None and self.last_heartbeat >= self.offline_cutoff()

    @property
    def queue(self) -> str:
        """The Celery queue this host's worker consumes."""
        return f"host.{self.name}"

    @property
    def offline_job_wait(self) -> float:
        """Seconds its queued jobs wait while it is offline before they fail (0: until it is back)."""
        from .offline import job_timeout

        return job_timeout(self)


class Image(models.Model):
    name = models.CharField(max_length=255)
    tag = models.CharField(max_length=128, blank=True, default="latest")
    digest = models.CharField(max_length=100, blank=True)  # "sha256:…" of the image config/manifest
    size = models.BigIntegerField(default=0)
    layers = models.JSONField(default=list, blank=True)
    config = models.JSONField(default=dict, blank=True)
    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="images")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="images"
    )
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="images")
    shared = models.BooleanField(default=False)
    # Whose name `name:tag` is (containers/namespaces.py): "" the system's, "u<id>" a user's, "t<id>" a team's.
    namespace = models.CharField(max_length=24, blank=True, default="")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "tag"]
        indexes = [models.Index(fields=["host", "name", "tag"]),
                   models.Index(fields=["host", "namespace", "name", "tag"], name="image_host_ns_name_tag")]

    def __str__(self) -> str:
        return f"{self.name}:{self.tag}" if self.tag else self.digest[:19]

    @property
    def ref(self) -> str:
        """The user-facing `name:tag` (what pages and the API show)."""
        return str(self)

    def save(self, *args, **kwargs) -> None:
        if self._state.adding and not self.namespace:  # a row made without one: its owner's (see namespaces)
            from .namespaces import for_image

            self.namespace = for_image(self.owner, self.team_id)
        super().save(*args, **kwargs)

    @property
    def engine_ref(self) -> str:
        """The host's image store ref: `name:tag` scoped by the name space (never shown to users)."""
        from .namespaces import engine_ref

        return engine_ref(self.namespace, self.name, self.tag)


class Container(models.Model):
    class State(models.TextChoices):  # the engine's vocabulary (workers/engine/containers/states.py) + removing
        CREATED = states.CREATED
        RUNNING = states.RUNNING
        PAUSED = states.PAUSED
        EXITED = states.EXITED
        DEAD = states.DEAD
        REMOVING = "removing"  # the web side's own: a remove job is queued

    engine_id = models.CharField(max_length=64, unique=True, default=new_engine_id, editable=False)
    name = models.CharField(max_length=200)
    image = models.ForeignKey(Image, null=True, blank=True, on_delete=models.SET_NULL, related_name="containers")
    image_ref = models.CharField(max_length=400, blank=True)
    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="containers")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="containers"
    )
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="containers")
    # Whose name `name` is (containers/namespaces.py); the engine knows the container as `engine_name`.
    namespace = models.CharField(max_length=24, blank=True, default="")
    command = models.JSONField(default=list, blank=True)
    config = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.CREATED)
    exit_code = models.IntegerField(null=True, blank=True)
    oom_killed = models.BooleanField(default=False)
    labels = models.JSONField(default=dict, blank=True)
    # Docker's syntax: "no", "always", "unless-stopped", "on-failure[:N]".
    restart_policy = models.CharField(max_length=32, default="no", blank=True)
    restart_count = models.PositiveIntegerField(default=0)
    # The last thing the host said about this container that a user should read (e.g. why it died).
    status_message = models.CharField(max_length=500, blank=True)
    created = models.DateTimeField(default=timezone.now)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    # The host's view of its networking (addresses, MAC, gateway, networks, published ports), from the engine.
    network = models.JSONField(default=dict, blank=True)
    # Why Berth put it on its host when its creator named none (services/placement.py); None: the host was named.
    placement = models.JSONField(null=True, blank=True, default=None)

    class Meta:
        ordering = ["-created"]
        constraints = [models.UniqueConstraint(fields=["host", "namespace", "name"],
                                               name="unique_container_name_per_namespace")]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        if self._state.adding and not self.namespace:  # a row made without one: its owner's (see namespaces)
            from .namespaces import for_container

            self.namespace = for_container(self.owner, self.team_id)
        super().save(*args, **kwargs)

    @property
    def engine_name(self) -> str:
        from .namespaces import engine_name

        return engine_name(self.namespace, self.name)

    @property
    def shown_state(self) -> str:
        """What users are told: "unknown" while its host is offline (the row keeps the last state it reported)."""
        from .offline import shown_state

        return shown_state(self)


class Volume(models.Model):
    """A named volume on one host. Its name lives in its owner's name space (a team's volumes in the
    team's): two tenants may each have a volume `data`. The host knows it by `engine_id` only."""

    class State(models.TextChoices):
        READY = "ready"
        REMOVING = "removing"

    engine_id = models.CharField(max_length=64, unique=True, default=new_engine_id, editable=False)
    name = models.CharField(max_length=128)
    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="volumes")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="volumes"
    )
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="volumes")
    labels = models.JSONField(default=dict, blank=True)
    # Bytes the volume may hold, enforced by the host (a filesystem of that size); None = no limit.
    size = models.BigIntegerField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.READY)
    # The containers whose mounts name this volume (a remove is refused while there are any).
    containers = models.ManyToManyField(Container, related_name="volumes", blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "-created"]
        constraints = [
            models.UniqueConstraint(fields=["host", "team", "name"], condition=models.Q(team__isnull=False),
                                    name="unique_team_volume_name_per_host"),
            models.UniqueConstraint(fields=["host", "owner", "name"], condition=models.Q(team__isnull=True),
                                    name="unique_user_volume_name_per_host"),
        ]

    def __str__(self) -> str:
        return self.name


class Network(models.Model):
    """A bridge network on one host. Its name lives in its owner's name space (a team's in the team's), as
    containers' names do; the host knows it by `engine_name` (namespaces.engine_name)."""

    class State(models.TextChoices):
        READY = "ready"
        REMOVING = "removing"

    name = models.CharField(max_length=64)
    namespace = models.CharField(max_length=24, blank=True, default="")
    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="networks")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="networks"
    )
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="networks")
    subnet = models.CharField(max_length=64, blank=True)  # "" until the host chose one
    gateway = models.CharField(max_length=64, blank=True)
    internal = models.BooleanField(default=False)
    labels = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.READY)
    containers = models.ManyToManyField(Container, related_name="networks", blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "-created"]
        constraints = [
            models.UniqueConstraint(fields=["host", "namespace", "name"], name="unique_network_name_per_namespace"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def engine_name(self) -> str:
        from .namespaces import engine_name

        return engine_name(self.namespace, self.name)


class ApiToken(models.Model):
    """A per-user API token. Only a hash is kept; the token itself is shown once, at creation."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, db_index=True)  # first characters, to recognise a token in lists
    key_hash = models.CharField(max_length=64, unique=True)  # sha256 hex of the whole token
    created = models.DateTimeField(default=timezone.now)
    last_used = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def active(self) -> bool:
        return self.revoked is None


class AuditEvent(models.Model):
    """One action someone attempted: who, what, on which object, from where, and how it ended."""

    created = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    actor_name = models.CharField(max_length=150, blank=True)  # kept when the user is deleted
    action = models.CharField(max_length=100)  # e.g. "container.start", "token.create", "login"
    target_type = models.CharField(max_length=50, blank=True)
    target_id = models.CharField(max_length=100, blank=True)
    target_repr = models.CharField(max_length=300, blank=True)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events")
    address = models.GenericIPAddressField(null=True, blank=True)
    via = models.CharField(max_length=16, blank=True)  # "api", "dashboard", "websocket", "worker"
    result = models.CharField(max_length=16)  # "ok", "denied", "invalid", "failed"
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["team", "created"]), models.Index(fields=["target_type", "target_id"])]

    def __str__(self) -> str:
        return f"{self.actor_name or '-'} {self.action} {self.target_type}:{self.target_id} {self.result}"


class Job(models.Model):
    """One change a user asked for, executed by the worker of `host` (see containers/jobs.py)."""

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    FINISHED_STATES = (State.SUCCEEDED, State.FAILED, State.CANCELLED)

    kind = models.CharField(max_length=100)  # e.g. "host.probe", "container.start"
    target_type = models.CharField(max_length=50, blank=True)  # e.g. "container", "image", "host"
    target_id = models.CharField(max_length=100, blank=True)
    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="jobs")
    params = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED, db_index=True)
    progress = models.PositiveSmallIntegerField(default=0)
    message = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    # A failed job's stable code (e.g. "invalid", "no_such_image") and the input field it blames (a container
    # spec field such as "user"), from the engine's error: where the API and the dashboard show the error.
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_field = models.CharField(max_length=64, blank=True, default="")
    result = models.JSONField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # "<pid>:<process start ticks>" of the worker process running the job, to tell a dead run from a live one.
    worker = models.CharField(max_length=100, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    idempotency_key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    created = models.DateTimeField(default=timezone.now)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["host", "state"])]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.state})"

    @property
    def owner_id(self) -> int | None:
        """Jobs belong to whoever asked for them."""
        return self.requested_by_id

    @property
    def finished_state(self) -> bool:
        return self.state in self.FINISHED_STATES

    @property
    def shown_message(self) -> str:
        """The message users read: a job queued for an offline host says why it waits (containers/offline.py)."""
        from .offline import job_message

        return job_message(self)


from .join_models import JoinToken  # noqa: E402,F401  (issue 18; its own module)
from .registry_models import RegistryCredential  # noqa: E402,F401  (issue 15; its own module)
from .transfer_model import Transfer  # noqa: E402,F401  (a model of this app, in its own module)
