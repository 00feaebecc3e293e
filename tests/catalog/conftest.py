"""Catalog-tier fixtures: real sample data, generated once per session.

- ``samples``: the small samples (default seed) generated into a temporary data root; the
  directory is removed at the end of the session.
- ``root_catalog``: the repository's root catalog (catalogs/statbox.yaml) loaded through
  Statbox over ``samples``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from statbox.catalog import load_catalog
from statbox.catalog.samples import generate
from tests.conftest import REPO

ROOT_CATALOG = REPO / "catalogs" / "statbox.yaml"


@pytest.fixture(scope="session")
def samples() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="statbox-samples-"))
    generate(directory, "small", progress=False)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def root_catalog(samples):
    return load_catalog(ROOT_CATALOG, samples)
