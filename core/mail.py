"""An email backend for the embedded default: each message is written as its own .eml file, which any mail
client opens (letters, manifests and mandates as attachments), so a newcomer sees exactly what a controller
would receive without a mail server."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone


class EmlDirectoryBackend(BaseEmailBackend):
    """Writes each message to EMAIL_DIRECTORY/<time>-<id>.eml; never sends anything anywhere."""

    _lock = threading.Lock()

    def __init__(self, *args, directory: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.directory = Path(directory or settings.EMAIL_DIRECTORY)

    def send_messages(self, email_messages) -> int:
        if not email_messages:
            return 0
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            written = 0
            for message in email_messages:
                name = f"{timezone.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:8]}.eml"
                try:
                    (self.directory / name).write_bytes(message.message().as_bytes(linesep="\r\n"))
                except OSError:
                    if not self.fail_silently:
                        raise
                    continue
                written += 1
        return written
