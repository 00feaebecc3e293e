"""The classroom's typed refusals: a web handler maps them to 403 and 404, the CLI to exit 2."""

from __future__ import annotations

from statbox.errors import BadInput


class NotAllowed(BadInput):
    """The acting user may not do this (another cohort, another trainee, wrong role)."""


class NotFound(BadInput):
    """No such course, cohort, publication, submission or grading job (for this user)."""
