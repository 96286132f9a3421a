from celery import shared_task

from . import services


@shared_task
def sweep_deadlines() -> int:
    """The periodic deadline job (beat schedule in settings); idempotent, so overlapping runs are harmless."""
    return services.sweep_deadlines()
