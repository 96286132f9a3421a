from django.apps import AppConfig
from django.db.backends.signals import connection_created


def _register_sqlite_functions(sender, connection, **kwargs) -> None:
    """SQLite has no HMAC: give each connection the audit_hmac() that PostgreSQL gets from pgcrypto, so the
    same SQL signs events on both (the key is a query parameter, never stored)."""
    if connection.vendor == "sqlite":
        from core.audit import SQL_FUNCTION, sqlite_audit_hmac

        connection.connection.create_function(SQL_FUNCTION, 2, sqlite_audit_hmac, deterministic=True)


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Shared infrastructure"

    def ready(self) -> None:
        connection_created.connect(_register_sqlite_functions, dispatch_uid="core.audit_hmac")
