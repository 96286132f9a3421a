from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CommunitiesConfig(AppConfig):
    name = "communities"
    verbose_name = "Communities, members and mandates"

    def ready(self) -> None:
        # Registers the per-community rules, and keeps each role's group holding its permissions.
        from communities import tenancy

        post_migrate.connect(tenancy.role_groups_sync, dispatch_uid="communities.role_groups_sync")
