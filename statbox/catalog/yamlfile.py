"""Read a catalog's YAML as plain data, refusing whatever YAML could turn into code.

The reading is every Statbox file's (:func:`statbox.settings.yamlfile.read_yaml_mapping`: plain tags
only, no duplicate keys, no alias bombs, nothing constructed before the whole tree is
checked); here its problems become a :class:`~statbox.catalog.errors.CatalogError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from statbox.catalog.errors import CatalogError
from statbox.settings.yamlfile import FileProblems, Lines, read_yaml_mapping


def read_yaml(path: Path) -> tuple[dict[str, Any], Lines]:
    """The mapping in ``path`` and the line of each key path; raise CatalogError if unsafe."""
    try:
        return read_yaml_mapping(path, "a catalog: a mapping with version: 2")
    except FileProblems as found:
        raise CatalogError.of(found) from None
