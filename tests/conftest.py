"""Test tiers, and what every tier shares.

Tiers (markers): unit tests need nothing; ``integration`` starts real processes (hub, proxy,
Dask Gateway, kernels) on loopback. A tier whose tool is missing skips on a laptop, but fails
when ``CI=true``: CI must never pass by skipping.

Fixtures here:
- ``repo``: the checkout's root directory.
- ``require_tool(name, found)``: skip (or fail under CI) when a tool a test needs is missing.
- ``repo_samples``: the small sample datasets under the checkout's ``data/`` (what ``make up``
  generates), for stacks whose settings read data from there; made once if missing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def repo_samples() -> Path:
    from statbox.catalog.samples import generate, is_current

    data = REPO / "data"
    if not is_current(data, "small"):
        generate(data, "small", progress=False)
    return data


def require_tool(name: str, found: bool) -> None:
    """Skip when ``name`` is missing, except under CI, where a missing tool is a failure."""
    if found:
        return
    if IN_CI:
        pytest.fail(f"{name} is required under CI=true but is missing")
    pytest.skip(f"{name} is not available here")


CHROMIUM = Path(os.environ.get("STATBOX_CHROMIUM", "/usr/bin/chromium"))
"""Debian's Chromium, which the browser tiers drive through Playwright."""
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
