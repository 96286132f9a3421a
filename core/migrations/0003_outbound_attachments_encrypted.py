"""Outgoing mail's attachments are encrypted at rest; the files already stored in the clear are sealed."""

import core.crypto
from django.db import migrations, models


def seal_existing_files(apps, schema_editor):
    from core.crypto import seal_plain_files

    for model, field in (("OutboundAttachment", "file"),):
        seal_plain_files(apps.get_model("core", model), field)


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0002_outbox_delivery_hooks"),
    ]

    operations = [
        migrations.AlterField(
            model_name="outboundattachment",
            name="file",
            field=models.FileField(
                editable=False, max_length=300, storage=core.crypto.EncryptedStorage(), upload_to="outbox/"
            ),
        ),
        migrations.RunPython(seal_existing_files, migrations.RunPython.noop),
    ]
