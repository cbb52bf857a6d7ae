from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('containers', '0011_container_placement'),
    ]

    operations = [
        migrations.AddField(
            model_name='host',
            name='offline_job_timeout',
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
    ]
