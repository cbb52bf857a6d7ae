import django.db.models.deletion
from django.db import migrations, models

import containers.transfer_model


class Migration(migrations.Migration):

    dependencies = [
        ("containers", "0006_job_error_fields"),
    ]

    operations = [
        migrations.CreateModel(
            name="Transfer",
            fields=[
                ("id", models.UUIDField(primary_key=True, serialize=False)),
                ("kind", models.CharField(choices=[("upload", "Upload"), ("download", "Download")], max_length=16)),
                ("token", models.CharField(default=containers.transfer_model.new_token, max_length=64)),
                ("size", models.BigIntegerField(default=0)),
                ("created", models.DateTimeField(auto_now_add=True)),
                ("expires", models.DateTimeField()),
                ("host", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="transfers",
                                           to="containers.host")),
                ("job", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE,
                                          related_name="transfers", to="containers.job")),
            ],
            options={"indexes": [models.Index(fields=["job", "kind"], name="containers__job_id_77b4f3_idx")]},
        ),
    ]
