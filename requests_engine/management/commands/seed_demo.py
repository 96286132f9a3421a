from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from requests_engine import demo


class Command(BaseCommand):
    help = "Create the demo community, people, controllers and a campaign (idempotent; never in production)."

    def handle(self, *args, **options):
        if settings.PRODUCTION:
            raise CommandError("seed_demo creates accounts with published passwords: not in production.")
        summary = demo.seed_demo()
        states = ", ".join(f"{n} {s}" for s, n in sorted(summary.requests_by_state.items()))
        site = settings.SITE_URL.rstrip("/")
        # Where emails (verification and sign-in links) can be read: a folder of .eml files, or the console.
        folder = settings.EMAIL_DIRECTORY
        mail = f"the newest .eml file in {folder}/" if folder else "printed here"
        self.stdout.write(
            f"Demo data ready: {summary.controllers_created} controllers imported this run; "
            f"campaigns {summary.campaign}: {states}; {len(summary.complaints)} complaints.\n"
            f"  Back office  {site}/admin/   user {demo.COORDINATOR_EMAIL}   password {demo.COORDINATOR_PASSWORD}\n"
            f"               also {demo.CASEWORKER_EMAIL} (caseworker) and {demo.VIEWER_EMAIL} (viewer), "
            f"password {demo.STAFF_PASSWORD}\n"
            f"  Members      {site}/me/   {', '.join(summary.members[:2])} … (password {demo.MEMBER_PASSWORD})\n"
            f"  Join         {site}/join/writers/   (the verification link: {mail})\n"
            f"  Controllers  {site}/respond/   e.g. dpo@openai.test (the sign-in link: {mail})\n"
            f"  Complaints   {site}/admin/requests_engine/complaint/   (a draft to approve, one awaiting "
            "acknowledgement, an ICO pack to download)\n"
            f"  Invitations  {site}/admin/communities/invitation/   (people from the membership list; "
            '"Import members" takes a CSV)\n'
            f"  Health       {site}/healthz"
        )
