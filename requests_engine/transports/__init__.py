"""How requests reach controllers and how we follow them there: one module per channel (`drp`, …).

Each transport sends one request by its id and records the outcome through `requests_engine.services`; the
Celery tasks that call it own the retry policy.
"""
