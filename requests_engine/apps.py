from django.apps import AppConfig


class RequestsEngineConfig(AppConfig):
    name = "requests_engine"
    verbose_name = "Controllers, campaigns and requests"
