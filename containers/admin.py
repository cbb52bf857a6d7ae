from django.contrib import admin

from .models import (
    ApiToken,
    AuditEvent,
    Container,
    Host,
    Image,
    Job,
    JoinToken,
    Team,
    TeamLimits,
    TeamMembership,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the hosts' engines own (made and removed by jobs): the admin shows them, never adds, edits or
    deletes them (a row the engine knows nothing about would be a lie). Changes go through the dashboard
    or the API, which submit jobs."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Host)
class HostAdmin(ReadOnlyAdmin):
    list_display = ("name", "kernel", "cgroup_version", "cpus", "memory_bytes", "labels", "cordoned", "join_token",
                    "last_heartbeat")


@admin.register(JoinToken)
class JoinTokenAdmin(ReadOnlyAdmin):
    """Made and revoked on the Hosts page or the API (audited there); a join token is never deleted under a host."""

    list_display = ("name", "prefix", "host_name", "created_by", "created", "expires", "last_used", "revoked")


@admin.register(Image)
class ImageAdmin(ReadOnlyAdmin):
    list_display = ("name", "tag", "host", "owner", "size", "created")
    list_filter = ("host",)


@admin.register(Container)
class ContainerAdmin(ReadOnlyAdmin):
    list_display = ("name", "image_ref", "host", "owner", "state", "exit_code", "created")
    list_filter = ("host", "state")


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "host", "state", "progress", "attempts", "requested_by", "created")
    list_filter = ("state", "kind", "host")


class MembershipInline(admin.TabularInline):
    model = TeamMembership
    extra = 1


class LimitsInline(admin.StackedInline):
    model = TeamLimits
    can_delete = True
    extra = 0
    max_num = 1


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    inlines = [MembershipInline, LimitsInline]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created", "last_used", "revoked")
    readonly_fields = ("key_hash", "prefix")


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("created", "actor_name", "action", "target_type", "target_id", "result", "address", "via")
    list_filter = ("result", "via", "team")
    search_fields = ("actor_name", "action", "target_repr")
