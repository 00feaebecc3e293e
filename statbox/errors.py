"""Errors the CLI reports as one clear message, and the exit code each maps to.

Exit codes (documented in the README and in ``statbox --help``):

====  ==================================================================================
0     success
1     an operation failed while running (a process died, a check failed)
2     bad input: invalid settings, arguments or files; nothing was changed
3     this machine lacks something: a tool, a free port, a permission (see statbox doctor)
4     damaged state: a database is damaged or was emptied; restore a backup (nothing changed)
130   interrupted (Ctrl-C) before the operation finished
====  ==================================================================================
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1
    BAD_INPUT = 2
    ENVIRONMENT = 3
    DAMAGED_STATE = 4
    INTERRUPTED = 130


class StatboxError(Exception):
    """An error with a message for the operator and an exit code."""

    exit_code = ExitCode.FAILED

    def __init__(self, *messages: str):
        self.messages = list(messages)
        super().__init__("\n".join(messages))


class BadInput(StatboxError):
    """The operator's input is wrong; nothing was changed."""

    exit_code = ExitCode.BAD_INPUT


class EnvironmentProblem(StatboxError):
    """The machine lacks something the operation needs."""

    exit_code = ExitCode.ENVIRONMENT


class DamagedState(StatboxError):
    """Stored state (the hub's database) is damaged or was emptied; nothing was changed.
    Distinct from bad input: restarting does not help, restoring a backup does."""

    exit_code = ExitCode.DAMAGED_STATE
