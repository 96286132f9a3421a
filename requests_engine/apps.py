from django.apps import AppConfig


class RequestsEngineConfig(AppConfig):
    name = "requests_engine"
    verbose_name = "Controllers, campaigns and requests"

    def ready(self) -> None:
        # Register the encrypted file fields so rotate_keys finds every file.
        from requests_engine.responses import files as returned_data  # noqa: F401
