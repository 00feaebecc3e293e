"""When a process that died may be started again: back-off, and a limit after which the one
supervising it gives up (local mode's stack, docker mode's gateway container)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class RestartPolicy:
    """When a dead part may be started again.

    Back-off doubles from ``first_delay`` to ``max_delay`` with each death within
    ``window`` seconds; more than ``limit`` deaths within ``window`` and the run gives up
    (a part that dies that often is broken, and restarting it hides that)."""

    limit: int = 5
    window: float = 300.0
    first_delay: float = 0.5
    max_delay: float = 8.0
    deaths: deque[float] = field(default_factory=deque)

    def death(self, now: float | None = None) -> float | None:
        """Note a death; the seconds to wait before the restart, or None: give up."""
        now = time.monotonic() if now is None else now
        self.deaths.append(now)
        while self.deaths and now - self.deaths[0] > self.window:
            self.deaths.popleft()
        if len(self.deaths) > self.limit:
            return None
        return float(min(self.max_delay, self.first_delay * 2 ** (len(self.deaths) - 1)))
