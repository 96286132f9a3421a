"""The deployment files under deploy/ agree with each other and with the code they start.

Plain file checks: no database and no Django set-up needed.
"""

import configparser
import re
import shlex
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
VENV_BIN = "/srv/datacommunity/.venv/bin/"
UNITS = ["datacommunity-web", "datacommunity-worker", "datacommunity-mail-worker@", "datacommunity-beat"]

PRODUCTION_VARIABLES = [
    "DJANGO_ENV",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "DEBUG",
    "CSRF_TRUSTED_ORIGINS",
    "SITE_URL",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "EMAIL_URL",
    "DEFAULT_FROM_EMAIL",
    "MEDIA_ROOT",
    "LOG_LEVEL",
    "CONN_MAX_AGE",
    "SWEEP_INTERVAL_SECONDS",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "FIELD_ENCRYPTION_KEYS",
    "AUDIT_KEYS",
]
RUNTIME_DEBIAN_PACKAGES = [
    "libpango-1.0-0",
    "libpangoft2-1.0-0",
    "libharfbuzz-subset0",
    "fontconfig",
    "fonts-dejavu-core",
    "libmagic1",
]

# ${NAME}, ${NAME:-default}, ${NAME:?message}; "$${...}" is escaped and left to the container's shell.
COMPOSE_INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")
# env("NAME"...), env.str("NAME"...), env.db_url("NAME"...), os.environ.get("NAME"), os.getenv("NAME")
SETTINGS_ENV_READ = re.compile(
    r"""\b(?:env(?:\.\w+)?|os\.environ\.get|os\.getenv)\(\s*["']([A-Z][A-Z0-9_]*)["']"""
)


def env_example() -> dict[str, str]:
    """NAME -> value of each assignment in .env.example (comments and blank lines skipped)."""
    values = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def command_words(service: dict) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(word) for word in command]


def runs_celery(words: list[str], program: str) -> bool:
    """Whether the command words start Celery's `program` (worker or beat) on the `config` app."""
    return "celery" in Path(words[0]).name and program in words and "-A config" in " ".join(words)


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string((DEPLOY / "systemd" / f"{name}.service").read_text())
    return parser


# compose.yaml


def test_compose_defines_the_six_services():
    assert set(compose()["services"]) == {"postgres", "redis", "web", "worker", "mail-worker", "beat"}


def queues_of(words: list[str]) -> str:
    return words[words.index("-Q") + 1] if "-Q" in words else "celery"


def test_outgoing_mail_has_its_own_one_process_workers_and_the_others_leave_it_alone():
    # One message in flight per worker process bounds the duplicates a crash can cause (deploy/README.md).
    from config import settings

    mail_tasks = {name for name, route in settings.CELERY_TASK_ROUTES.items() if route["queue"] == "mail"}
    assert mail_tasks == {"core.tasks.send_outbound_message", "core.tasks.send_outbound_messages"}
    services = compose()["services"]
    mail = command_words(services["mail-worker"])
    assert runs_celery(mail, "worker") and queues_of(mail) == "mail"
    assert (
        mail[mail.index("--concurrency") + 1] == "1" and mail[mail.index("--prefetch-multiplier") + 1] == "1"
    )
    assert queues_of(command_words(services["worker"])) == "celery"
    unit_mail = shlex.split(unit("datacommunity-mail-worker@")["Service"]["ExecStart"])
    assert queues_of(unit_mail) == "mail" and unit_mail[unit_mail.index("--concurrency") + 1] == "1"
    unit_worker = shlex.split(unit("datacommunity-worker")["Service"]["ExecStart"])
    assert queues_of(unit_worker) == "celery"


def test_worker_and_beat_start_celery_on_the_config_app():
    services = compose()["services"]
    assert runs_celery(command_words(services["worker"]), "worker")
    assert runs_celery(command_words(services["beat"]), "beat")


def test_exactly_one_service_runs_celery_beat():
    services = compose()["services"]
    beats = [name for name, service in services.items() if "beat" in command_words(service)]
    assert beats == ["beat"]
    assert services["beat"].get("deploy", {}).get("replicas", 1) == 1


def test_web_waits_for_healthy_postgres_and_redis():
    depends_on = compose()["services"]["web"]["depends_on"]
    for dependency in ("postgres", "redis"):
        assert depends_on[dependency]["condition"] == "service_healthy"


def test_redis_keeps_its_append_only_file():
    assert "--appendonly yes" in " ".join(command_words(compose()["services"]["redis"]))


def test_every_variable_interpolated_in_compose_is_in_the_env_example():
    interpolated = set(COMPOSE_INTERPOLATION.findall((DEPLOY / "compose.yaml").read_text()))
    assert interpolated <= set(env_example())


# systemd units


@pytest.mark.parametrize("name", UNITS)
def test_systemd_unit_runs_from_the_venv_as_a_confined_service_user(name):
    parsed = unit(name)
    assert {"Unit", "Service", "Install"} <= set(parsed.sections())
    service = parsed["Service"]
    assert service["ExecStart"].startswith(VENV_BIN)
    assert service["User"] == "datacommunity"
    assert service["EnvironmentFile"] == "/etc/datacommunity.env"
    assert service["Restart"] == "on-failure"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert "/srv/datacommunity/var" in service["ReadWritePaths"].split()
    assert service["PrivateTmp"] == "yes"


def test_web_unit_serves_the_wsgi_application_on_loopback():
    exec_start = unit("datacommunity-web")["Service"]["ExecStart"]
    assert "config.wsgi:application" in exec_start
    assert "--bind 127.0.0.1:8000" in exec_start


@pytest.mark.parametrize(
    ("name", "program"), [("worker", "worker"), ("mail-worker@", "worker"), ("beat", "beat")]
)
def test_celery_units_start_celery_on_the_config_app(name, program):
    exec_start = unit(f"datacommunity-{name}")["Service"]["ExecStart"]
    assert runs_celery(shlex.split(exec_start), program)


# .env.example


def test_env_example_documents_every_production_variable():
    values = env_example()
    assert values["DJANGO_ENV"] == "production"
    assert [name for name in PRODUCTION_VARIABLES if name not in values] == []


def test_every_env_example_variable_has_a_comment_line_above_it():
    lines = (DEPLOY / ".env.example").read_text().splitlines()
    for number, line in enumerate(lines):
        if line.strip() and not line.startswith("#"):
            assert number > 0 and lines[number - 1].startswith("#"), f"undocumented: {line}"


@pytest.mark.parametrize(
    "name",
    ["SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "AUDIT_KEYS", "POSTGRES_PASSWORD", "DATABASE_URL", "EMAIL_URL"],
)
def test_secrets_in_env_example_are_placeholders(name):
    assert "change-me" in env_example()[name]


def test_example_database_url_uses_the_compose_postgres_credentials():
    values = env_example()
    expected = f"postgres://{values['POSTGRES_USER']}:{values['POSTGRES_PASSWORD']}@postgres:5432/"
    assert values["DATABASE_URL"] == expected + values["POSTGRES_DB"]


def test_every_setting_read_from_env_is_documented():
    read = set(SETTINGS_ENV_READ.findall((REPO / "config" / "settings.py").read_text()))
    assert {"SECRET_KEY", "DATABASE_URL"} <= read  # the pattern still matches how settings.py reads
    assert sorted(read - set(env_example())) == []


# code and image


@pytest.mark.parametrize("module", ["config/wsgi.py", "config/celery.py"])
def test_modules_the_deployment_starts_exist(module):
    assert (REPO / module).is_file()


def test_dockerfile_installs_the_runtime_debian_packages():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    apt_install = re.search(r"apt-get install ((?:.*\\\n)*.*)", dockerfile).group(1)
    assert [package for package in RUNTIME_DEBIAN_PACKAGES if package not in apt_install.split()] == []


def test_dockerfile_runs_gunicorn_as_a_non_root_user():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^CMD .*gunicorn config\.wsgi:application", dockerfile, re.MULTILINE)
