"""The indicators service (hub-managed): the scheduler, and the published indicators' pages
and JSON API. ``python -m statbox.indicators.web`` runs it as the hub starts it."""
