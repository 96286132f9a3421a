"""The outbox: one row per message we send, whatever the channel, kept as the evidence that it went out.

Rows are written by `core.outbox.queue_email` and moved between statuses only by the conditional UPDATEs in
`core.outbox`; nothing here has behaviour of its own.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from core import crypto


class OutboundMessage(models.Model):
    """One message to send: who to, what, about which case, and what happened when we tried."""

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        LETTER = "letter", "Letter"
        DRP = "drp", "Data Rights Protocol call"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.EMAIL)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)

    to = models.JSONField(default=list, help_text="Recipient addresses.")
    cc = models.JSONField(default=list, blank=True)
    reply_to = models.JSONField(default=list, blank=True)
    from_email = models.CharField(max_length=320)
    subject = models.CharField(max_length=998)  # RFC 5322 line limit
    body_text = models.TextField()
    body_html = models.TextField(blank=True)
    headers = models.JSONField(default=dict, blank=True, help_text="Extra headers, name to value.")
    # Set when queued so that it is known before sending: replies quote it in In-Reply-To/References.
    message_id = models.CharField(max_length=255, unique=True)

    # What the message concerns, kept generic so that core depends on no app: ("mandate", "12").
    subject_type = models.CharField(max_length=30, blank=True)
    subject_id = models.CharField(max_length=64, blank=True)
    purpose = models.CharField(
        max_length=60, blank=True, help_text='A stable code, e.g. "mandate.signed_copy".'
    )

    # What to run once the message is accepted or has failed for good: a Celery task name called with the
    # message's id, so the app that queued it (core imports neither app) records delivery in its domain.
    on_sent_task = models.CharField(max_length=200, blank=True)
    on_failed_task = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    queued_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True, help_text="When the latest attempt began.")
    sent_at = models.DateTimeField(null=True, blank=True)
    not_before = models.DateTimeField(default=timezone.now, help_text="No attempt before this (backoff).")

    class Meta:
        ordering = ["-queued_at"]
        indexes = [
            # The sweeper: queued rows by not_before ("due but never picked up"), sending rows by claimed_at
            # ("stuck"). Sent rows, the vast majority, stay out of the index.
            models.Index(fields=["not_before"], condition=Q(status="queued"), name="outbox_queued_due"),
            models.Index(fields=["claimed_at"], condition=Q(status="sending"), name="outbox_sending_claimed"),
            # The back office list, newest first.
            models.Index(fields=["-queued_at"], name="outbox_queued_at"),
            # "Everything we sent about this mandate/request", for case pages and evidence packs.
            models.Index(fields=["subject_type", "subject_id"], name="outbox_subject"),
        ]

    def __str__(self) -> str:
        return f"{self.message_id} {self.status}"


class OutboundAttachment(models.Model):
    """A file sent with a message, stored so that exactly what was sent can be shown later."""

    message = models.ForeignKey(OutboundMessage, on_delete=models.CASCADE, related_name="attachments")
    # The stored name is a random token (the original name may hold personal data); `filename` is what
    # the recipient sees.
    file = models.FileField(
        upload_to="outbox/", max_length=300, editable=False, storage=crypto.encrypted_storage
    )
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.filename
