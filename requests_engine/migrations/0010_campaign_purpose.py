import django.db.models.deletion
from django.db import migrations, models


def _name(text: str) -> str:
    words = " ".join(text.split())
    return words if len(words) <= 120 else words[:119].rstrip() + "…"


def purposes_from_texts(apps, schema_editor):
    """Each distinct purpose text a community's mandates or campaigns used becomes one of its purposes; a
    mandate that said "all the community's controllers" names the community's list of today, the only
    list there is to name."""
    Community = apps.get_model("communities", "Community")
    Purpose = apps.get_model("communities", "Purpose")
    Mandate = apps.get_model("communities", "Mandate")
    Campaign = apps.get_model("requests_engine", "Campaign")
    for community in Community.objects.all():
        by_text: dict[str, object] = {}

        def purpose_for(text: str):
            key = " ".join(text.split()) or community.purpose
            if key not in by_text:
                name, n = _name(key), 1
                while Purpose.objects.filter(community=community, name=name).exists():
                    n += 1
                    name = f"{_name(key)[:110]} ({n})"
                by_text[key] = Purpose.objects.create(community=community, name=name, text=key)
            return by_text[key]

        listed = list(community.controllers.values_list("pk", flat=True))
        for mandate in Mandate.objects.filter(member__community=community):
            mandate.purposes.add(purpose_for(mandate.purposes_text))
            if mandate.all_controllers:
                mandate.controllers.add(*listed)
        for campaign in Campaign.objects.filter(community=community):
            campaign.purpose = purpose_for(campaign.purpose_text)
            campaign.save(update_fields=["purpose"])


class Migration(migrations.Migration):
    dependencies = [
        ("communities", "0006_purposes"),
        ("requests_engine", "0009_request_keys_enforced_by_database"),
    ]

    operations = [
        migrations.RenameField(model_name="campaign", old_name="purpose", new_name="purpose_text"),
        migrations.AddField(
            model_name="campaign",
            name="purpose",
            field=models.ForeignKey(
                help_text="Why the community is asking; its text is quoted in every letter.",
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="campaigns",
                to="communities.purpose",
            ),
        ),
        migrations.RunPython(purposes_from_texts, migrations.RunPython.noop),
        migrations.RemoveField(model_name="campaign", name="purpose_text"),
    ]
