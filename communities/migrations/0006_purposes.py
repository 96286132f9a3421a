import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    """A community's named purposes; a mandate names some of them (its old free text is moved onto them by
    requests_engine 0010, then dropped by 0007)."""

    dependencies = [
        ("communities", "0005_notices_and_replaced_mandates"),
        ("requests_engine", "0009_request_keys_enforced_by_database"),
    ]

    operations = [
        migrations.CreateModel(
            name="Purpose",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "name",
                    models.CharField(
                        help_text="Short, in plain words: “Find out whether AI developers used members' work”.",
                        max_length=120,
                    ),
                ),
                ("text", models.TextField(help_text="The sentence that goes into mandates and letters.")),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                (
                    "community",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="purposes", to="communities.community"
                    ),
                ),
            ],
            options={"ordering": ["name"]},
        ),
        migrations.AddConstraint(
            model_name="purpose",
            constraint=models.UniqueConstraint(fields=("community", "name"), name="purpose_name_per_community"),
        ),
        migrations.RenameField(model_name="mandate", old_name="purposes", new_name="purposes_text"),
        migrations.AddField(
            model_name="mandate",
            name="purposes",
            field=models.ManyToManyField(related_name="mandates", to="communities.purpose"),
        ),
        migrations.AlterField(
            model_name="mandate",
            name="all_controllers",
            field=models.BooleanField(default=False),
        ),
        migrations.AlterField(
            model_name="community",
            name="controllers",
            field=models.ManyToManyField(
                blank=True,
                help_text="Members choose among these when they sign; a campaign can only write to these.",
                related_name="communities",
                to="requests_engine.controller",
                verbose_name="the organisations we act towards",
            ),
        ),
    ]
