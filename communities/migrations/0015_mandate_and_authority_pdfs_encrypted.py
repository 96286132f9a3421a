"""Signed mandates and authority documents are encrypted at rest; the files already stored in the clear are sealed."""

import core.crypto
from django.db import migrations, models


def seal_existing_files(apps, schema_editor):
    from core.crypto import seal_plain_files

    for model, field in (
        ("Mandate", "pdf"),
        ("Authority", "pdf"),
    ):
        seal_plain_files(apps.get_model("communities", model), field)


class Migration(migrations.Migration):
    dependencies = [
        ("communities", "0014_existing_staff_become_coordinators"),
    ]

    operations = [
        migrations.AlterField(
            model_name="authority",
            name="pdf",
            field=models.FileField(
                blank=True, editable=False, storage=core.crypto.EncryptedStorage(), upload_to="authorities/"
            ),
        ),
        migrations.AlterField(
            model_name="mandate",
            name="pdf",
            field=models.FileField(
                blank=True, editable=False, storage=core.crypto.EncryptedStorage(), upload_to="mandates/"
            ),
        ),
        migrations.RunPython(seal_existing_files, migrations.RunPython.noop),
    ]
