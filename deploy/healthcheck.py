"""Container healthcheck: exit 0 when the local gunicorn answers GET /healthz with 200.

The request looks like one forwarded by the HTTPS reverse proxy (a Host taken from ALLOWED_HOSTS and
X-Forwarded-Proto: https), so production settings neither reject the host nor redirect to HTTPS.
"""

import os
import sys
import urllib.error
import urllib.request

URL = "http://127.0.0.1:8000/healthz"


def host_header() -> str:
    """First concrete host in ALLOWED_HOSTS (".example.org" becomes "example.org")."""
    for host in os.environ.get("ALLOWED_HOSTS", "").split(","):
        host = host.strip().lstrip(".")
        if host and host != "*":
            return host
    return "localhost"


def main() -> int:
    request = urllib.request.Request(URL, headers={"Host": host_header(), "X-Forwarded-Proto": "https"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"healthz failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
