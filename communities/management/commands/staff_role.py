from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from communities import tenancy
from communities.models import Community, Role


class Command(BaseCommand):
    help = (
        "Give a staff user a role in a community (coordinator, caseworker or viewer), or take it away with "
        "--remove. The user must exist (createsuperuser, or sign up then be given a role)."
    )

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("community", help="the community's slug")
        parser.add_argument("role", nargs="?", choices=Role.values)
        parser.add_argument("--remove", action="store_true", help="take away the user's role there")

    def handle(self, *args, email, community, role, remove, **options):
        user = get_user_model().objects.filter(email__iexact=email).order_by("pk").first()
        if user is None:
            raise CommandError(f"No user has the email address {email}.")
        found = Community.objects.filter(slug=community).first()
        if found is None:
            raise CommandError(f"No community has the slug {community!r}.")
        if remove:
            tenancy.staff_role_revoke(user=user, community=found)
            self.stdout.write(f"{email} no longer works in {found}'s back office.")
            return
        if not role:
            raise CommandError("Name the role: coordinator, caseworker or viewer (or pass --remove).")
        tenancy.staff_role_grant(user=user, community=found, role=role)
        self.stdout.write(f"{email} is now {Role(role).label.split(':')[0].lower()} of {found}.")
