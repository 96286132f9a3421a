"""Letters, manifests, complaint PDFs, ICO packs and members' complaint kits are encrypted at rest; the files already stored in the clear are sealed."""

import core.crypto
from django.db import migrations, models


def seal_existing_files(apps, schema_editor):
    from core.crypto import seal_plain_files, seal_plain_folder

    seal_plain_folder("complaint-kits")  # members' self-complaint kits

    for model, field in (
        ("Batch", "letter_pdf"),
        ("Batch", "manifest"),
        ("Complaint", "evidence_pack"),
    ):
        seal_plain_files(apps.get_model("requests_engine", model), field)


class Migration(migrations.Migration):
    dependencies = [
        ("requests_engine", "0022_terms_of_mandates_signed_before"),
    ]

    operations = [
        migrations.AlterField(
            model_name="batch",
            name="letter_pdf",
            field=models.FileField(
                blank=True, editable=False, storage=core.crypto.EncryptedStorage(), upload_to="batches/"
            ),
        ),
        migrations.AlterField(
            model_name="batch",
            name="manifest",
            field=models.FileField(
                blank=True, editable=False, storage=core.crypto.EncryptedStorage(), upload_to="batches/"
            ),
        ),
        migrations.AlterField(
            model_name="complaint",
            name="evidence_pack",
            field=models.FileField(
                blank=True, editable=False, storage=core.crypto.EncryptedStorage(), upload_to="complaints/"
            ),
        ),
        migrations.RunPython(seal_existing_files, migrations.RunPython.noop),
    ]
