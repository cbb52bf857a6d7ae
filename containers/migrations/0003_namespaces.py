"""Name spaces for image and container names (containers/namespaces.py).

Existing rows: a team's object goes to the team's name space; an image owned by nobody or by a superuser
is the system's; anything else goes to its owner's. The host's engine refs of non-system images are moved
to their scoped form by the worker when it starts (workers/handlers/images.py: adopt_scoped_refs).
"""

from django.db import migrations, models


def assign(apps, schema_editor):
    Image = apps.get_model("containers", "Image")
    Container = apps.get_model("containers", "Container")
    for image in Image.objects.select_related("owner").iterator():
        if image.team_id is not None:
            ns = f"t{image.team_id}"
        elif image.owner_id is None or image.owner.is_superuser:
            ns = ""
        else:
            ns = f"u{image.owner_id}"
        Image.objects.filter(pk=image.pk).update(namespace=ns)
    for c in Container.objects.iterator():
        ns = f"t{c.team_id}" if c.team_id is not None else (f"u{c.owner_id}" if c.owner_id is not None else "")
        Container.objects.filter(pk=c.pk).update(namespace=ns)


class Migration(migrations.Migration):

    dependencies = [
        ("containers", "0002_tokens_audit_container_fields"),
    ]

    operations = [
        migrations.AddField(
            model_name="image",
            name="namespace",
            field=models.CharField(blank=True, default="", max_length=24),
        ),
        migrations.AddField(
            model_name="container",
            name="namespace",
            field=models.CharField(blank=True, default="", max_length=24),
        ),
        migrations.RemoveConstraint(
            model_name="container",
            name="unique_container_name_per_host",
        ),
        migrations.AddConstraint(
            model_name="container",
            constraint=models.UniqueConstraint(fields=("host", "namespace", "name"),
                                               name="unique_container_name_per_namespace"),
        ),
        migrations.AddIndex(
            model_name="image",
            index=models.Index(fields=["host", "namespace", "name", "tag"], name="image_host_ns_name_tag"),
        ),
        migrations.RunPython(assign, migrations.RunPython.noop),
    ]
