from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("communities", "0006_purposes"),
        ("requests_engine", "0010_campaign_purpose"),
    ]

    operations = [migrations.RemoveField(model_name="mandate", name="purposes_text")]
