"""The faults tier: the integration tier's settings file, for a stack of its own.

- ``stack_settings``: as in tests/integration (ana an analyst, alice a trainee).
"""

from tests.integration.conftest import stack_settings

__all__ = ["stack_settings"]
