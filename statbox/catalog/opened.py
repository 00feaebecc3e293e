"""A catalog opened through Statbox: an Intake 2 catalog whose entries are checked before use.

:func:`load_catalog` hands Intake only a file that :func:`~.loader.read_catalog` checked
(lazily: see :mod:`.loader`), with the data root set by Statbox. Invariant: reading an entry
(``catalog[name]``) first validates its metadata and checks its data (files present, stored
schema as declared), once per entry; any problem raises
:class:`~statbox.catalog.errors.CatalogError` naming file and line, and nothing is read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from intake.readers.entry import Catalog

from statbox.catalog.errors import CatalogError
from statbox.catalog.loader import _DATA_REF, DATA_ROOT, CatalogInfo


def catalog_from_checked(info: CatalogInfo, data: dict) -> StatboxCatalog:
    """The Intake catalog of a file :func:`~.loader.read_catalog` checked, reading from
    ``info.data_root``."""
    for section in ("aliases", "metadata", "user_parameters", "data", "entries"):
        data.setdefault(section, {})
    catalog = StatboxCatalog.from_dict(data)
    # What intake.from_yaml_file sets, and the data root in place of its environment default.
    catalog.user_parameters["CATALOG_PATH"] = str(info.source)
    catalog.user_parameters["CATALOG_DIR"] = str(info.source.resolve().parent)
    catalog.user_parameters["STORAGE_OPTIONS"] = {}
    catalog.user_parameters[DATA_ROOT] = info.data_root
    catalog._statbox = info
    catalog._statbox_verified = set()
    return catalog


class StatboxCatalog(Catalog):
    """An Intake catalog loaded through Statbox: an entry is checked the first time it is
    opened (metadata valid; files exist; stored columns, types and variables match the
    declared schema)."""

    _statbox: CatalogInfo
    _statbox_verified: set[str]

    def __getitem__(self, item: str) -> Any:
        info = self.__dict__.get("_statbox")
        name = self.aliases.get(item, item)
        if info is not None and name in info.entries and name not in self._statbox_verified:
            from statbox.catalog.verify import stored_problems

            problems = stored_problems(info, info.entries[name])
            if problems:
                raise CatalogError(problems)
            self._statbox_verified.add(name)
        return super().__getitem__(item)

    def to_dask(self, name: str) -> Any:
        """The entry ``name`` read by Dask (a lazy dask DataFrame), with the same options."""
        entry = self._statbox.entries[name]
        reader = self[name]
        return reader.to_reader("dask.dataframe:DataFrame", **entry.options).read()

    @property
    def info(self) -> CatalogInfo:
        """What Statbox checked: entries with their access, data paths and lines."""
        return self._statbox

    def subset(self, names: Iterable[str]) -> StatboxCatalog:
        """A new catalog with only the entries ``names`` (and the data they read)."""
        keep = set(names)
        info = self._statbox
        new = StatboxCatalog(
            metadata=dict(self.metadata), user_parameters=dict(self.user_parameters)
        )
        for name in sorted(keep):
            entry = self.entries[name]
            data_key = _DATA_REF.match(entry.kwargs["args"][0]).group(1)  # type: ignore[union-attr]
            new.entries[name] = entry
            new.data[data_key] = self.data[data_key]
            new.aliases[name] = name
        new._statbox = CatalogInfo(
            info.source,
            info.data_root,
            {n: e for n, e in info.entries.items() if n in keep},
            info.metadata,
            info.lines,
        )
        new._statbox_verified = self._statbox_verified & keep
        return new
