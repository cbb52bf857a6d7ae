from django.contrib import admin

from .models import ApiToken, AuditEvent, Container, Host, Image, Job, Team, TeamLimits, TeamMembership


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    list_display = ("name", "kernel", "cgroup_version", "cpus", "memory_bytes", "last_heartbeat")


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ("name", "tag", "host", "owner", "size", "created")
    list_filter = ("host",)


@admin.register(Container)
class ContainerAdmin(admin.ModelAdmin):
    list_display = ("name", "image_ref", "host", "owner", "state", "exit_code", "created")
    list_filter = ("host", "state")


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
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
