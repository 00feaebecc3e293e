"""Load an Intake 2 catalog through Statbox: checked whole before Intake sees any of it.

Intake 2 treats a catalog as code: it imports the classes a file names (``reader``,
``datatype``, a user parameter's ``cls`` and ``dtype``), and it evaluates templates in
arguments: ``{env(NAME)}`` reads the environment, ``{func(mod:obj)}`` and
``{import(mod:obj)}`` import anything, ``{pickle64(...)}`` unpickles, and ``str.format`` field
syntax reaches attributes (``{X.__class__}``). Statbox allows only what its catalogs need:

- readers and datatypes from the table :data:`READERS` (Intake's own file readers);
- user parameters of Intake's plain classes with builtin scalar dtypes;
- templates ``{STATBOX_DATA_ROOT}``, ``{CATALOG_DIR}``, the catalog's own parameters by plain
  name, and ``{data(KEY)}`` for data the catalog defines; the one environment read allowed is
  the default ``env(STATBOX_DATA_ROOT)`` of the data-root parameter, which Statbox replaces
  with the settings' data root on loading anyway;
- every entry's files live under ``{STATBOX_DATA_ROOT}/<domain>/<dataset>/`` (no ``..``), so
  a deployment can mount exactly one dataset directory, and production can point the same
  catalog at object storage.

Invariant: :func:`read_catalog` returns a :class:`CatalogInfo` whose every entry passed these
checks, declares a valid access level and its domain, and (unless ``lazy``) has valid metadata;
or it raises :class:`CatalogError` listing every problem with file and line. With ``lazy``
(what opening a catalog in a notebook does, see :mod:`.opened`) an entry's other metadata is
validated the first time it is used (:meth:`EntryInfo.metadata`), so opening never imports
pydantic, the settings model or Intake; every check still runs before an entry is read.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from statbox.catalog.errors import CatalogError, Lines, Problem, line_of, problem_at
from statbox.catalog.levels import Access, parse_access
from statbox.catalog.yamlfile import read_yaml
from statbox.contract import DATA_ROOT_ENV, DATA_URL, is_data_url

if TYPE_CHECKING:
    from statbox.catalog.metadata import EntryMetadata

DATA_ROOT = DATA_ROOT_ENV
"""The catalog parameter every entry's url starts with; Statbox sets it to paths.data_root."""
DATA_ROOT_DEFAULT = f"env({DATA_ROOT})"
"""Its default in the files, so that plain ``intake.from_yaml_file`` works in a user server."""

_R = "intake.readers.readers:"
_D = "intake.readers.datatypes:"
READERS: dict[str, tuple[str, tuple[str, ...]]] = {
    _R + "PandasParquet": ("pandas:DataFrame", (_D + "Parquet",)),
    _R + "PandasCSV": ("pandas:DataFrame", (_D + "CSV",)),
    _R + "DaskParquet": ("dask.dataframe:DataFrame", (_D + "Parquet",)),
    _R + "DaskCSV": ("dask.dataframe:DataFrame", (_D + "CSV",)),
    _R + "GeoPandasReader": ("geopandas:GeoDataFrame", (_D + "GeoJSON",)),
    _R + "GeoPandasTabular": ("geopandas:GeoDataFrame", (_D + "Parquet",)),
    _R + "XArrayDatasetReader": ("xarray:Dataset", (_D + "Zarr", _D + "NetCDF3", _D + "HDF5")),
}
"""Reader -> (the output it declares, the datatypes it may read). Nothing else is loaded."""

DATA_KWARGS = {"url", "storage_options", "root", "path"}
USER_PARAMETER_CLASSES = {
    "intake.readers.user_parameters:" + name
    for name in ("SimpleUserParameter", "OptionsUserParameter", "BoundedNumberUserParameter")
}
USER_PARAMETER_KEYS = {"cls", "default", "description", "dtype", "options", "max", "min"}
SAFE_DTYPES = {"str", "int", "float", "bool"}
"""A parameter's dtype is called on values: ``eval`` or ``exec`` there would run code."""
BUILTIN_PARAMETERS = {"CATALOG_DIR", "CATALOG_PATH", "STORAGE_OPTIONS"}

ENTRY_NAME = re.compile(r"^([a-z][a-z_]*)\.([a-z][a-z0-9_]*)$")
RELATIVE_PATH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=-]*(/[A-Za-z0-9_][A-Za-z0-9_.=-]*)*/?$")
_TEMPLATE_FUNCS = re.compile(r"^\{?(env|func|import|pickle64)[(]([^)]*)[)]\}?")
_DATA_REF = re.compile(r"^\{?data[(]([^)]+)[)]\}?$")


@dataclass(frozen=True)
class EntryInfo:
    """What Statbox knows about one entry, from its YAML."""

    name: str
    access: Access
    """Who may see it (``metadata.access``, checked on loading)."""
    reader: str
    datatype: str
    relative_url: str
    """The entry's files under the data root, e.g. ``sdg/indicators/indicators.csv``."""
    key: tuple
    """Where the entry is in the file (its key path), to name lines in messages."""
    data_key: str
    """The key of the data it reads (under ``data:`` in the file)."""
    options: dict[str, Any] = field(default_factory=dict)
    """The reader's keyword arguments besides the data."""
    raw_metadata: Any = field(default=None, repr=False, compare=False)
    """Its ``metadata`` as the file has it; :attr:`metadata` validates it."""
    source: str = ""
    lines: Lines = field(default_factory=dict, repr=False, compare=False)

    @property
    def domain(self) -> str:
        """The first part of the name (loading checks that metadata.domain says the same)."""
        return self.name.split(".", 1)[0]

    @property
    def data_path(self) -> str:
        """The dataset directory relative to the data root (``<domain>/<dataset>``): what a
        container mounts to read this entry."""
        return "/".join(self.name.split(".", 1))

    @cached_property
    def _validated(self) -> tuple[EntryMetadata | None, list[Problem]]:
        from statbox.catalog.metadata import (
            metadata_findings,  # pydantic: only once an entry is used
        )

        metadata, findings = metadata_findings(self.raw_metadata)
        where = (*self.key, "metadata")
        return metadata, [problem_at(self.source, self.lines, (*where, *k), m) for k, m in findings]

    def metadata_problems(self) -> list[Problem]:
        """Every problem in the entry's metadata (validated once, on first use)."""
        return list(self._validated[1])

    @property
    def metadata(self) -> EntryMetadata:
        """The entry's validated metadata; raises :class:`CatalogError` naming every problem."""
        metadata, problems = self._validated
        if metadata is None:
            raise CatalogError(problems)
        return metadata


@dataclass(frozen=True)
class CatalogInfo:
    """A checked catalog file: its entries and the line of every key, for messages."""

    source: Path
    data_root: str
    entries: dict[str, EntryInfo]
    metadata: dict[str, Any]
    lines: Lines = field(repr=False)

    def line(self, key: Iterable[Any]) -> int | None:
        """The line of the deepest part of ``key`` the file spells out."""
        return line_of(tuple(key), self.lines)

    def problem(self, key: Iterable[Any], message: str) -> Problem:
        return problem_at(self.source, self.lines, key, message)

    def url(self, entry: EntryInfo) -> str:
        return join_root(self.data_root, entry.relative_url)

    def metadata_problems(self) -> list[Problem]:
        """Every problem in every entry's metadata."""
        return [p for entry in self.entries.values() for p in entry.metadata_problems()]


def join_root(root: str, relative: str) -> str:
    return f"{root.rstrip('/')}/{relative}"


def resolve_data_root(root: str | Path) -> str:
    """The data root as intake should see it: an absolute directory, or a URL as given."""
    text = str(root)
    if is_data_url(text):
        if not re.match(DATA_URL, text):
            raise CatalogError(
                [Problem("paths.data_root", None, "", f"{text!r}: not an s3/gs/az/https URL")]
            )
        return text.rstrip("/")
    return str(Path(text).resolve())


# --------------------------------------------------------------------------- checks


class _Checker:
    """Collects every problem in one catalog file (all of them, not just the first)."""

    def __init__(self, source: Path, lines: Lines):
        self.source = source
        self.lines = lines
        self.problems: list[Problem] = []

    def add(self, key: tuple, message: str) -> None:
        self.problems.append(problem_at(self.source, self.lines, key, message))

    def mapping(self, value: Any, key: tuple, allowed: set[str] | None = None) -> dict:
        if not isinstance(value, Mapping):
            self.add(key, f"expected a mapping, got {type(value).__name__}")
            return {}
        if allowed is not None:
            for extra in sorted(set(map(str, value)) - allowed):
                self.add((*key, extra), f"unknown key; allowed here: {', '.join(sorted(allowed))}")
        return dict(value)

    def templates(self, value: Any, key: tuple, names: set[str], data_keys: set[str]) -> None:
        """Refuse every template Intake would evaluate except plain names and data refs."""
        if isinstance(value, Mapping):
            for k, v in value.items():
                self.templates(v, (*key, k), names, data_keys)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.templates(v, (*key, i), names, data_keys)
        elif isinstance(value, str):
            self._template_string(value, key, names, data_keys)

    def _template_string(self, text: str, key: tuple, names: set[str], data_keys: set[str]):
        bare = _TEMPLATE_FUNCS.match(text)  # intake also evaluates these without braces
        if bare:
            self.add(key, _refusal(bare.group(1), bare.group(2)))
            return
        ref = _DATA_REF.match(text)
        if ref:
            if ref.group(1) not in data_keys:
                self.add(key, f"{text!r} refers to data {ref.group(1)!r}, which is not defined")
            return
        try:
            fields = [f for _, f, spec, conv in string.Formatter().parse(text) if f is not None]
            specs = [(spec, conv) for _, f, spec, conv in string.Formatter().parse(text) if f]
        except ValueError as exc:
            self.add(key, f"{text!r}: unbalanced braces ({exc}); write {{{{ and }}}} for braces")
            return
        for name in fields:
            func = _TEMPLATE_FUNCS.match(name)
            if func:
                self.add(key, _refusal(func.group(1), func.group(2)))
            elif _DATA_REF.match(name):
                self.add(key, f"{{{name}}} may only stand alone as a whole value")
            elif not name.isidentifier():
                self.add(
                    key,
                    f"template {{{name}}} reaches into an object (attributes, items or "
                    "calls); only plain {NAME} templates are allowed",
                )
            elif name not in names:
                known = ", ".join(sorted(names))
                self.add(key, f"unknown template {{{name}}}; known: {known}")
        if any(spec or conv for spec, conv in specs):
            self.add(key, f"{text!r}: format specs and conversions are not allowed in templates")

    def user_parameters(self, value: Any, key: tuple, data_keys: set[str], top: bool) -> set[str]:
        names = set()
        for name, spec in self.mapping(value, key).items():
            names.add(str(name))
            spec = self.mapping(spec, (*key, name), USER_PARAMETER_KEYS)
            if spec.get("cls") not in USER_PARAMETER_CLASSES:
                self.add(
                    (*key, name, "cls"),
                    f"{spec.get('cls')!r} is not a user-parameter class Statbox loads; use "
                    + ", ".join(sorted(USER_PARAMETER_CLASSES)),
                )
            if "dtype" in spec and spec["dtype"] not in SAFE_DTYPES:
                self.add(
                    (*key, name, "dtype"),
                    f"{spec['dtype']!r}: a parameter's dtype is called on its values; use one "
                    f"of {', '.join(sorted(SAFE_DTYPES))}",
                )
            default = spec.get("default")
            if top and name == DATA_ROOT:
                if default != DATA_ROOT_DEFAULT:
                    self.add(
                        (*key, name, "default"),
                        f"must be {DATA_ROOT_DEFAULT!r} (Statbox sets the data root)",
                    )
            else:
                self.templates(default, (*key, name, "default"), set(), data_keys)
        return names


def _refusal(kind: str, argument: str) -> str:
    if kind == "env":
        return (
            f"template reads environment variable {argument!r}; catalogs may not read the "
            f"environment (only the default of {DATA_ROOT} does, and Statbox sets it)"
        )
    if kind == "pickle64":
        return "template unpickles data, which runs code; store plain values"
    return f"template imports {argument!r}, which runs code; catalogs may not import objects"


def check_catalog(
    data: dict[str, Any], lines: Lines, source: Path
) -> tuple[dict[str, EntryInfo], list[Problem]]:
    """Every problem in a parsed catalog, and its entries' information when there are none."""
    c = _Checker(source, lines)
    c.mapping(data, (), {"version", "metadata", "user_parameters", "data", "entries", "aliases"})
    if data.get("version") != 2:
        c.add(("version",), f"{data.get('version')!r}: Statbox reads Intake 2 catalogs: version: 2")
    c.mapping(data.get("metadata", {}), ("metadata",))
    raw_data = c.mapping(data.get("data", {}), ("data",))
    data_keys = set(map(str, raw_data))
    names = c.user_parameters(
        data.get("user_parameters", {}), ("user_parameters",), data_keys, True
    )
    if DATA_ROOT not in names:
        c.add(
            ("user_parameters",),
            f"declare the {DATA_ROOT} parameter (cls SimpleUserParameter, dtype str, default "
            f"{DATA_ROOT_DEFAULT!r}); entries address their files under it",
        )
    names |= BUILTIN_PARAMETERS | {DATA_ROOT}
    datatypes: dict[str, str] = {}
    urls: dict[str, str] = {}
    for key, spec in raw_data.items():
        where = ("data", key)
        spec = c.mapping(spec, where, {"datatype", "kwargs", "metadata", "user_parameters"})
        datatype = spec.get("datatype")
        known = {d for _, types in READERS.values() for d in types}
        if datatype not in known:
            c.add(
                (*where, "datatype"),
                f"{datatype!r} is not a datatype Statbox loads: " + ", ".join(sorted(known)),
            )
        datatypes[key] = str(datatype)
        local = names | c.user_parameters(
            spec.get("user_parameters", {}), (*where, "user_parameters"), data_keys, False
        )
        kwargs = c.mapping(spec.get("kwargs", {}), (*where, "kwargs"), DATA_KWARGS)
        c.templates(kwargs, (*where, "kwargs"), local, data_keys)
        c.mapping(spec.get("metadata", {}), (*where, "metadata"))
        options = kwargs.get("storage_options")
        if options is not None and not isinstance(options, Mapping):
            c.add((*where, "kwargs", "storage_options"), "expected a mapping or null")
        url = kwargs.get("url")
        prefix = "{" + DATA_ROOT + "}/"
        if not isinstance(url, str) or not url.startswith(prefix):
            c.add(
                (*where, "kwargs", "url"),
                f"{url!r}: an entry's url must start with {prefix} (files live under the data "
                "root, so production can point the catalog at object storage)",
            )
            continue
        relative = url[len(prefix) :]
        if not RELATIVE_PATH.match(relative) or ".." in relative.split("/"):
            c.add(
                (*where, "kwargs", "url"),
                f"{url!r}: the part after {prefix} must be a plain relative path "
                "(letters, digits, _ . = -; no '..', no templates, no '//')",
            )
            continue
        urls[key] = relative

    entries: dict[str, EntryInfo] = {}
    raw_entries = c.mapping(data.get("entries", {}), ("entries",))
    aliases = c.mapping(data.get("aliases", {}), ("aliases",))
    used_data: dict[str, str] = {}
    for name, spec in raw_entries.items():
        where = ("entries", name)
        spec = c.mapping(
            spec, where, {"reader", "kwargs", "metadata", "output_instance", "user_parameters"}
        )
        match = ENTRY_NAME.match(str(name))
        if not match:
            c.add(where, "entry names are <domain>.<dataset> (lower case, digits, _)")
        reader = spec.get("reader")
        if reader not in READERS:
            c.add(
                (*where, "reader"),
                f"{reader!r} is not a reader Statbox loads: " + ", ".join(sorted(READERS)),
            )
            continue
        output, readable = READERS[reader]
        if spec.get("output_instance") != output:
            c.add(
                (*where, "output_instance"),
                f"{spec.get('output_instance')!r}: {reader} produces {output!r}",
            )
        local = names | c.user_parameters(
            spec.get("user_parameters", {}), (*where, "user_parameters"), data_keys, False
        )
        kwargs = c.mapping(spec.get("kwargs", {}), (*where, "kwargs"))
        c.templates(kwargs, (*where, "kwargs"), local, data_keys)
        args = kwargs.get("args")
        ref = (
            _DATA_REF.match(args[0])
            if isinstance(args, list) and len(args) == 1 and isinstance(args[0], str)
            else None
        )
        if ref is None:
            c.add((*where, "kwargs", "args"), "expected args: ['{data(KEY)}'] naming one data key")
            continue
        data_key = ref.group(1)
        if data_key not in raw_data:
            continue  # reported by the template check
        if data_key in used_data:
            c.add(
                (*where, "kwargs", "args"),
                f"data {data_key!r} is already read by entry {used_data[data_key]!r}; each "
                "entry has its own data",
            )
        used_data[data_key] = str(name)
        if datatypes.get(data_key) not in readable:
            c.add(
                (*where, "reader"),
                f"{reader} cannot read {datatypes.get(data_key)} (data {data_key!r})",
            )
        raw_metadata = spec.get("metadata", {})
        meta = raw_metadata if isinstance(raw_metadata, Mapping) else {}
        access, findings = parse_access(meta.get("access"))
        for key, message in findings:
            c.add((*where, "metadata", "access", *key), message)
        if str(name) not in aliases:
            c.add(
                ("aliases",),
                f"entry {name!r} has no alias ({name}: {name}); Intake lists entries by alias",
            )
        if match is None or data_key not in urls:
            continue
        domain, dataset = match.groups()
        if meta.get("domain") != domain:
            c.add(
                (*where, "metadata", "domain"),
                f"{meta.get('domain')!r}, but the entry is named {name!r}: the name starts with "
                "the domain",
            )
        relative = urls[data_key]
        directory = f"{domain}/{dataset}"
        if relative.rstrip("/") != directory and not relative.startswith(directory + "/"):
            c.add(
                ("data", data_key, "kwargs", "url"),
                f"entry {name!r} must keep its files under {{{DATA_ROOT}}}/{directory}/ (one "
                "directory per dataset, so it can be mounted alone)",
            )
            continue
        if access is None:
            continue
        entries[str(name)] = EntryInfo(
            name=str(name),
            access=access,
            reader=str(reader),
            datatype=datatypes[data_key],
            relative_url=relative.rstrip("/"),
            key=where,
            data_key=data_key,
            options={k: v for k, v in kwargs.items() if k != "args"},
            raw_metadata=raw_metadata,
            source=str(source),
            lines=lines,
        )
    for alias, target in aliases.items():
        if target not in raw_entries:
            c.add(("aliases", alias), f"points at {target!r}, which is not an entry")
    return entries, c.problems


# --------------------------------------------------------------------------- reading


def read_catalog(
    path: Path | str, data_root: str | Path | None = None, *, lazy: bool = False
) -> tuple[CatalogInfo, dict]:
    """Parse and check ``path``; the checked information and the plain data for Intake.

    Every entry's metadata is validated too, unless ``lazy``: then each entry's is validated
    when it is first used (see the module's invariant).
    """
    source = Path(path)
    data, lines = read_yaml(source)
    entries, problems = check_catalog(data, lines, source)
    if not lazy:
        problems += [p for entry in entries.values() for p in entry.metadata_problems()]
    if problems:
        raise CatalogError(problems)
    root = resolve_data_root(data_root) if data_root is not None else ""
    metadata = data.get("metadata") or {}
    return CatalogInfo(source, root, entries, metadata, lines), data
