"""One settings module, read from the environment.

With no environment at all the service runs embedded: SQLite in the project folder, Celery tasks run
eagerly in the web process, email written to files under var/mail. Production sets DJANGO_ENV=production
and must then provide every secret explicitly (a missing one fails at start-up).
"""

import warnings
from pathlib import Path

import environ

# pyHanko imports cryptography's DSA types, which newer cryptography releases mark deprecated on import.
# Seals here are ECDSA P-256 and DSA is never used; left alone, the warning would add lines to every
# command's output (and break the one-line error a bad argument gets).
warnings.filterwarnings("ignore", message="DSA is deprecated", module="pyhanko")

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

PRODUCTION = env.str("DJANGO_ENV", default="embedded") == "production"
if not PRODUCTION:
    (VAR_DIR / "static").mkdir(parents=True, exist_ok=True)  # the embedded default keeps everything here

if PRODUCTION:
    SECRET_KEY = env.str("SECRET_KEY")  # no default: production must set it
    DEBUG = env.bool("DEBUG", default=False)
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
else:
    SECRET_KEY = env.str("SECRET_KEY", default="embedded-default-not-secret-change-me-in-production")
    DEBUG = env.bool("DEBUG", default=True)
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver", "[::1]"])

CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")
SITE_NAME = env.str("SITE_NAME", default="Data community")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_fsm",
    "django_htmx",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "core",
    "communities",
    "requests_engine",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "core.middleware.IdleSessionMiddleware",
    "core.middleware.PrivatePagesMiddleware",
    "core.middleware.UnreadableFileMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
    "communities.middleware.StaffMfaMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # Role groups answer "may they change campaigns"; the rules of communities/tenancy.py answer "this one".
    "rules.permissions.ObjectPermissionBackend",
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/me/"
LOGOUT_REDIRECT_URL = "/"

# Content-Security-Policy (django-csp): our own files only. The brand colour is a style attribute on <html>,
# hence style-src-attr.
from csp.constants import NONE, SELF  # noqa: E402

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    }
}

# Accounts (django-allauth): email is the login, it must be verified before joining a community;
# allauth rate-limits logins, failed logins, sign-ups and password resets by default.
ACCOUNT_ADAPTER = "communities.adapters.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_CONFIRM_EMAIL_ON_GET = False  # mail scanners open links: confirming takes a button press
ACCOUNT_EMAIL_SUBJECT_PREFIX = ""
ACCOUNT_LOGOUT_ON_GET = False
# The account holder is told of every change to their sign-in (password, email, two-step sign-in), so a
# change they did not make does not go unnoticed.
ACCOUNT_EMAIL_NOTIFICATIONS = True
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if PRODUCTION else "http"
# Behind the reverse proxy every request comes from the proxy's address: the client's is the one the
# trusted proxies append to X-Forwarded-For (counted from the right, so a client cannot forge it). One
# helper reads it (core/client_ip.py) for rate limits and signature evidence. 0: no proxy in front.
ALLAUTH_TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
# Members' and staff sessions end after this many minutes unused (core/middleware.py); 0 turns it off, as in
# the embedded demo. Controller portal sessions end after PORTAL_IDLE_MINUTES.
SESSION_IDLE_MINUTES = env.int("SESSION_IDLE_MINUTES", default=120 if PRODUCTION else 0)
PORTAL_IDLE_MINUTES = env.int("PORTAL_IDLE_MINUTES", default=30)
# Failed logins: per client address, and per account with a growing wait (5 in 5 minutes, then 10 in an
# hour, then 20 in a day), so one account under attack locks only itself and nobody else.
ACCOUNT_RATE_LIMITS = {
    "login_failed": "10/m/ip,5/5m/key,10/1h/key,20/1d/key",
    # Controller portal sign-in links: per client address, and per address asked for.
    "portal_sign_in_per_client": "20/h/ip",
    "portal_sign_in_per_address": "3/15m/key,10/1d/key",
}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env.str("MFA_TOTP_ISSUER", default="Data community")
# Coordinators and staff must use a second factor for the back office. The embedded demo relaxes it so
# `make run` can be tried without an authenticator app; production always requires it.
STAFF_MFA_REQUIRED = PRODUCTION or env.bool("STAFF_MFA_REQUIRED", default=False)

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                # allauth's pages carry the community's name and contact (communities/accounts.py).
                "communities.accounts.account_community",
            ],
        },
    },
]

# Database: DATABASE_URL decides; the embedded default is a SQLite file in var/.
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the embedded web process and a management command share the file.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("init_command", "PRAGMA journal_mode=WAL;")
    DATABASES["default"]["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
# Receipt dates and deadlines are UK dates (RULES.md (k)): "today" is always the Europe/London date.
TIME_ZONE = "Europe/London"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").exists() else []
MEDIA_ROOT = env.path("MEDIA_ROOT", default=str(VAR_DIR / "media"))
MEDIA_URL = "/media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = not PRODUCTION

# Email: outside production it goes to the console (the `make run` terminal), a file backend or an SMTP
# server on loopback, never further (DESIGN §6).
if PRODUCTION:
    _email = env.email_url("EMAIL_URL", default="smtp://localhost:25")
else:
    _email = env.email_url("EMAIL_URL", default="consolemail://")
    if _email.get("EMAIL_BACKEND", "").endswith("smtp.EmailBackend") and _email.get("EMAIL_HOST") not in (
        "127.0.0.1",
        "localhost",
        "::1",
    ):
        raise environ.ImproperlyConfigured("Outside production, EMAIL_URL may only point at a loopback host.")
vars().update(_email)
# The embedded default (`make run`) writes each email as a .eml file in this folder instead (outside
# production only), so the letters, manifests and mandates a controller would get can be opened.
EMAIL_DIRECTORY = "" if PRODUCTION else env.str("EMAIL_DIRECTORY", default="")
if EMAIL_DIRECTORY:
    EMAIL_BACKEND = "core.mail.EmlDirectoryBackend"
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)  # a hung SMTP server must not hold a worker
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Data Community <community@localhost>")
# The outbox (core.outbox): every message we send is a row, sent after commit, retried with backoff.
MESSAGE_ID_DOMAIN = env.str("MESSAGE_ID_DOMAIN", default="community.localhost")
OUTBOX_MAX_ATTEMPTS = env.int("OUTBOX_MAX_ATTEMPTS", default=5)
OUTBOX_RETRY_DELAY_SECONDS = env.int("OUTBOX_RETRY_DELAY_SECONDS", default=60)
# A row left "sending" this long is taken as its worker's death and sent again; it must outlast one SMTP
# conversation (EMAIL_TIMEOUT). Fractions of a minute are allowed.
OUTBOX_STUCK_AFTER_MINUTES = env.float("OUTBOX_STUCK_AFTER_MINUTES", default=15)
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Celery: eager in the embedded default so the same code path runs without a broker.
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="memory://")
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=CELERY_BROKER_URL == "memory://")
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=None) or None
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Outgoing mail has a queue of its own, served by workers of one process each (deploy/: the mail-worker),
# so that a worker killed, or cut off from SMTP or the database, mid-send has handed at most one message to
# the SMTP server without recording it: at most one duplicate per worker and fault. Scale out with more
# mail workers (processes or machines), never more processes in one.
CELERY_TASK_ROUTES = {
    "core.tasks.send_outbound_message": {"queue": "mail"},
    "core.tasks.send_outbound_messages": {"queue": "mail"},
}
# Redis hands an unacknowledged task to another worker after the visibility timeout (one hour by default).
# Emails held back by a controller's send rate and outbox retries wait in the broker for hours (tasks ack
# late), so the timeout must outlast them or they are handed out again; sending stays idempotent regardless.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT_SECONDS", default=12 * 3600)
}
CELERY_TIMEZONE = TIME_ZONE
# Members' daily digests and coordinators' daily summaries go out at this hour (TIME_ZONE).
DAILY_EMAILS_HOUR = env.int("DAILY_EMAILS_HOUR", default=7)
from celery.schedules import crontab  # noqa: E402

# Deadlines are stored dates swept on a fixed schedule, never delayed tasks (STACK.md).
CELERY_BEAT_SCHEDULE = {
    "sweep-deadlines": {
        "task": "requests_engine.tasks.sweep_deadlines",
        "schedule": env.int("SWEEP_INTERVAL_SECONDS", default=3600),
    },
    "poll-mailbox": {
        "task": "requests_engine.inbound.poll_mailbox_task",
        "schedule": env.int("INBOUND_POLL_INTERVAL_SECONDS", default=120),
    },
    "expire-received-files": {
        "task": "requests_engine.tasks.expire_received_files",
        "schedule": env.int("RETENTION_SWEEP_INTERVAL_SECONDS", default=86400),
    },
    "expire-identity-documents": {
        "task": "requests_engine.tasks.expire_identity_documents",
        "schedule": env.int("RETENTION_SWEEP_INTERVAL_SECONDS", default=86400),
    },
    "poll-drp": {
        "task": "requests_engine.tasks.poll_drp_requests",
        "schedule": env.int("DRP_POLL_INTERVAL_SECONDS", default=900),
    },
    "sweep-complaints": {
        "task": "requests_engine.tasks.sweep_complaints",
        "schedule": env.int("COMPLAINTS_SWEEP_INTERVAL_SECONDS", default=86400),
    },
    "sweep-dispatch": {
        "task": "requests_engine.tasks.sweep_dispatch",
        "schedule": env.int("DISPATCH_SWEEP_INTERVAL_SECONDS", default=300),
    },
    "sweep-outbox": {
        "task": "core.tasks.sweep_outbox",
        "schedule": env.int("OUTBOX_SWEEP_INTERVAL_SECONDS", default=300),
    },
    # Once a day at a fixed hour, not every 24 hours from whenever beat started.
    "expire-mandates": {  # before the digests, so that they carry its notices
        "task": "communities.tasks.expire_mandates",
        "schedule": crontab(hour=max(DAILY_EMAILS_HOUR - 1, 0), minute=30),
    },
    "member-digests": {
        "task": "communities.tasks.send_member_digests",
        "schedule": crontab(hour=DAILY_EMAILS_HOUR, minute=0),
    },
    "coordinator-summaries": {
        "task": "requests_engine.tasks.send_coordinator_summaries",
        "schedule": crontab(hour=DAILY_EMAILS_HOUR, minute=5),
    },
    # The audit log: checked, then its heads checkpointed outside the database, every night.
    "verify-audit-log": {
        "task": "requests_engine.tasks.verify_audit_log",
        "schedule": crontab(hour=env.int("AUDIT_HOUR", default=3), minute=0),
    },
    "audit-checkpoint": {
        "task": "requests_engine.tasks.audit_checkpoint",
        "schedule": crontab(hour=env.int("AUDIT_HOUR", default=3), minute=20),
    },
}

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_THROTTLE_RATES": {"controller": env.str("API_RATE_PER_CONTACT", default="600/min")},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Data community controller API",
    "DESCRIPTION": "Requests addressed to a controller, and the actions it can take on them.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Inputs get components of their own, so the schema can say what the server enforces on them (a
    # required text is not blank: minLength 1).
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "requests_engine.api.schema.server_rules",
    ],
    # Swagger UI's files come from the sidecar package and are served locally, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "weasyprint": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
    },
}

# Encryption at rest (core.crypto): Fernet keys, newest first. Outside production an empty list is fine:
# a key is created on first use in KEY_DIR.
FIELD_ENCRYPTION_KEYS = (
    env.list("FIELD_ENCRYPTION_KEYS") if PRODUCTION else env.list("FIELD_ENCRYPTION_KEYS", default=[])
)
KEY_DIR = env.path("KEY_DIR", default=str(VAR_DIR / "keys"))
# The audit log's HMAC keys (core.audit): "id:base64key,id:base64key", current first, older ones kept so
# their events still verify. From the environment only, never the database: a database writer must not be
# able to sign a forged event. Outside production an empty value means a key file created in KEY_DIR.
AUDIT_KEYS = env.str("AUDIT_KEYS") if PRODUCTION else env.str("AUDIT_KEYS", default="")
# Sealed checkpoints of every event stream's head (manage.py audit_checkpoint), kept outside the database so
# that a rollback or truncation after one is caught; each is also emailed to AUDIT_CHECKPOINT_EMAIL if set.
AUDIT_CHECKPOINT_DIR = env.path("AUDIT_CHECKPOINT_DIR", default=str(VAR_DIR / "audit"))
AUDIT_CHECKPOINT_EMAIL = env.str("AUDIT_CHECKPOINT_EMAIL", default="")
# Who runs the installation: told, with the coordinators of the communities concerned, when the audit log
# fails its check.
OPERATOR_EMAIL = env.str("OPERATOR_EMAIL", default="")
# Errors to Sentry, personal data scrubbed (core/error_reports.py); unset: nothing leaves the machine.
SENTRY_DSN = env.str("SENTRY_DSN", default="")
if SENTRY_DSN:
    from core.error_reports import start as _start_error_reports

    _start_error_reports(SENTRY_DSN, environment="production" if PRODUCTION else "embedded")
# Returned data: upload limits per file and for a ZIP once unpacked.
UPLOAD_MAX_BYTES = env.int("UPLOAD_MAX_BYTES", default=100 * 1024 * 1024)
UPLOAD_MAX_UNZIPPED_BYTES = env.int("UPLOAD_MAX_UNZIPPED_BYTES", default=1024 * 1024 * 1024)
# All the files of one answer together (each file is held to UPLOAD_MAX_BYTES too).
UPLOAD_MAX_ANSWER_BYTES = env.int("UPLOAD_MAX_ANSWER_BYTES", default=200 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=10 * 1024 * 1024)
# Controller portal: how long an emailed sign-in link works.
PORTAL_LINK_MINUTES = env.int("PORTAL_LINK_MINUTES", default=30)
# Art 15 completeness: days a controller gets to supply what its access answer lacked (rolled to a
# working day), before the request can be escalated.
COMPLETENESS_FOLLOWUP_DAYS = env.int("COMPLETENESS_FOLLOWUP_DAYS", default=14)
# How long after acknowledging a s.164A complaint the controller has to give its outcome before the ICO may
# be asked: the Act sets no period ("without undue delay", s.164A(4)); RULES.md: escalate on the latest
# plausible date.
ICO_OUTCOME_WAIT_DAYS = env.int("ICO_OUTCOME_WAIT_DAYS", default=30)

# Inbound replies (requests_engine.responses.inbound): the community's mailbox over IMAP; an empty host turns it off.
INBOUND_IMAP_HOST = env.str("INBOUND_IMAP_HOST", default="")
INBOUND_IMAP_SSL = env.bool("INBOUND_IMAP_SSL", default=True)
INBOUND_IMAP_PORT = env.int("INBOUND_IMAP_PORT", default=993 if INBOUND_IMAP_SSL else 143)
INBOUND_IMAP_USER = env.str("INBOUND_IMAP_USER", default="")
INBOUND_IMAP_PASSWORD = env.str("INBOUND_IMAP_PASSWORD", default="")
INBOUND_IMAP_FOLDER = env.str("INBOUND_IMAP_FOLDER", default="INBOX")
INBOUND_IMAP_TIMEOUT = env.int("INBOUND_IMAP_TIMEOUT", default=30)
INBOUND_IMAP_MAX_PER_POLL = env.int("INBOUND_IMAP_MAX_PER_POLL", default=500)
# Replies come back to reply+<batch token>@REPLY_DOMAIN, which must deliver into the mailbox above.
REPLY_DOMAIN = env.str("REPLY_DOMAIN", default="community.localhost")

# Data Rights Protocol (requests_engine.dispatch.drp): per-controller credentials by slug,
# {"jwt_secret", "client_id", "client_secret", "token", "business_id", "regime"}; our DRP 1.0 agent identity.
DRP_CREDENTIALS = env.json("DRP_CREDENTIALS", default={})
DRP_AGENT_ID = env.str("DRP_AGENT_ID", default="")
DRP_SIGNING_KEY = env.str("DRP_SIGNING_KEY", default="")
DRP_REGIME = env.str(
    "DRP_REGIME", default="ccpa"
)  # DRP knows no UK GDPR regime; see requests_engine/dispatch/drp.py
DRP_TIMEOUT_SECONDS = env.float("DRP_TIMEOUT_SECONDS", default=10)
DRP_CLAIM_SECONDS = env.int("DRP_CLAIM_SECONDS", default=600)

# The community's document seal (mandate PDFs): a self-signed key pair created on first use. In production
# keep it on persistent, backed-up storage; a lost key makes older PDFs check as intact but not trusted.
SEAL_DIR = env.path("SEAL_DIR", default=str(VAR_DIR / "seal"))
SEAL_COMMON_NAME = env.str("SEAL_COMMON_NAME", default="Data community document seal")

if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
