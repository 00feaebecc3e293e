"""Fixtures of the language tier: the integration tier's local stack (``local_stack``,
``stack_settings``, ``passwords``; tests/integration/conftest.py), reused as they are."""

from tests.integration.conftest import local_stack, passwords, stack_settings

__all__ = ["local_stack", "passwords", "stack_settings"]
