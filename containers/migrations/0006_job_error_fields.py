from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("containers", "0005_volume_size"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="error_code",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.AddField(
            model_name="job",
            name="error_field",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
    ]
