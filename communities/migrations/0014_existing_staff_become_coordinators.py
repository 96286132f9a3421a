"""Before communities were tenants every staff user ran every community. So that nobody loses access, each
active staff user (superusers need no role) becomes a coordinator of every existing community and joins the
Coordinator group; the group's permissions are set after every migrate (CommunitiesConfig.ready)."""

from django.db import migrations


def existing_staff_become_coordinators(apps, schema_editor):
    user_model = apps.get_model("auth", "User")
    group_model = apps.get_model("auth", "Group")
    community_model = apps.get_model("communities", "Community")
    membership_model = apps.get_model("communities", "StaffMembership")
    staff = list(user_model.objects.filter(is_staff=True, is_active=True, is_superuser=False))
    communities = list(community_model.objects.all())
    if not staff or not communities:
        return
    group, _ = group_model.objects.get_or_create(name="Coordinator")
    for user in staff:
        for community in communities:
            membership_model.objects.get_or_create(
                user=user, community=community, defaults={"role": "coordinator"}
            )
        user.groups.add(group)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("communities", "0013_staff_roles"),
    ]

    operations = [migrations.RunPython(existing_staff_become_coordinators, migrations.RunPython.noop)]
