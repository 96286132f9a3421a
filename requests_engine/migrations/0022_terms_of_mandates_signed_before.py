"""Mandates signed before their signing event recorded the terms get one event that records them now.

From then on verify_audit_log can tell if a mandate's rights, organisations, purposes or dates change without
a new signature. What the terms were before this upgrade cannot be proved from the database (the old chain
was unkeyed), so this trusts the state at upgrade, as re-signing the chains in 0021 does. A mandate whose
history is broken, or that has none, is left alone: verify_audit_log reports the former.
"""

import hashlib
import hmac

from django.db import migrations
from django.utils import timezone

KIND = "mandate.terms_recorded"


def record_terms(apps, schema_editor):
    from communities.mandate_text import terms_sha256
    from core.audit import current_key, event_content

    Mandate = apps.get_model("communities", "Mandate")
    RequestEvent = apps.get_model("requests_engine", "RequestEvent")
    recorded = set(
        RequestEvent.objects.filter(
            kind__in=["mandate.signed", KIND], payload__has_key="terms_sha256", mandate__isnull=False
        ).values_list("mandate_id", flat=True)
    )
    broken = set(
        RequestEvent.objects.filter(key_id="", mandate__isnull=False).values_list("mandate_id", flat=True)
    )
    key = current_key()
    now = timezone.now()
    mandates = Mandate.objects.filter(history_seq__gt=0).prefetch_related("controllers", "purposes")
    for mandate in mandates.order_by("pk").iterator(chunk_size=500):
        if mandate.pk in recorded or mandate.pk in broken:
            continue
        fields = {
            "prev_hash": mandate.history_head,
            "stream": f"mandate:{mandate.pk}",
            "seq": mandate.history_seq + 1,
            "kind": KIND,
            "actor_kind": "system",
            "actor_id": "upgrade",
            "from_state": "",
            "to_state": "",
            "created_at": now,
            "payload": {"terms_sha256": terms_sha256(mandate), "text_sha256": mandate.text_sha256},
        }
        digest = hmac.new(key.secret, event_content(**fields).encode("utf-8"), hashlib.sha256).hexdigest()
        RequestEvent.objects.create(mandate_id=mandate.pk, hash=digest, key_id=key.id, **fields)
        Mandate.objects.filter(pk=mandate.pk).update(history_seq=fields["seq"], history_head=digest)


class Migration(migrations.Migration):
    dependencies = [("requests_engine", "0021_keyed_append_only_audit_log")]

    # Not reversible: the events table is append-only.
    operations = [migrations.RunPython(record_terms, migrations.RunPython.noop)]
