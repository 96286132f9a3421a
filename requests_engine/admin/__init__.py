"""The coordinators' back office (Django admin), one module per domain. Importing the package registers
every model admin."""

from requests_engine.admin import campaigns, complaints, directory, inbox, requests  # noqa: F401
