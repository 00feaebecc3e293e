"""What statbox imports is declared, and each package in the right place.

pyproject.toml declares ranges: the core ``dependencies`` (the hub and the ``statbox``
command), the ``notebook`` extra (user servers, kernels, Dask clusters, the courses and the
sample data), ``kubernetes`` and ``test``. The exact versions live in one place,
requirements/constraints.txt; the images lock theirs from it (``statbox images lock``).

Every third-party module is found with ``ast`` (imports at module level and inside
functions alike) and mapped to its distribution by the installed packages' metadata.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
EXTRAS: dict[str, list[str]] = PROJECT["optional-dependencies"]
SHIPPED = ("catalogs", "curriculum")
"""statbox/resources/<name> links to the checkout's folder: course code, not statbox's."""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    found = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert found, requirement
    return canonical(found.group(0))


def declared(*groups: str) -> set[str]:
    """Distribution names in core (``core``) and the named extras."""
    requirements = [
        *(PROJECT["dependencies"] if "core" in groups else []),
        *(req for group in groups if group != "core" for req in EXTRAS[group]),
    ]
    return {requirement_name(req) for req in requirements} - {"statbox"}


def imported_modules(source: str) -> set[str]:
    """Top-level names of every absolute import in ``source``, wherever it sits."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def third_party(modules: set[str]) -> set[str]:
    return {m for m in modules if m not in sys.stdlib_module_names and m != "__future__"}


def distributions(modules: set[str], where: str) -> dict[str, set[str]]:
    """Module -> its distributions (canonical names); every module must be installed."""
    known = packages_distributions()
    missing = sorted(m for m in modules if m not in known)
    assert not missing, f"{where}: imports modules no installed distribution provides: {missing}"
    return {m: {canonical(d) for d in known[m]} for m in modules}


def statbox_sources() -> list[Path]:
    resources = REPO / "statbox" / "resources"
    return [
        path
        for path in sorted((REPO / "statbox").rglob("*.py"))
        if "__pycache__" not in path.parts
        and not any(path.is_relative_to(resources / name) for name in SHIPPED)
    ]


def statbox_imports() -> dict[str, set[Path]]:
    found: dict[str, set[Path]] = {}
    for path in statbox_sources():
        for module in third_party(imported_modules(path.read_text())) - {"statbox"}:
            found.setdefault(module, set()).add(path.relative_to(REPO))
    return found


def test_every_package_statbox_imports_is_declared():
    imports = statbox_imports()
    assert "pydantic" in imports and "geopandas" in imports  # the scan sees both kinds
    dists = distributions(set(imports), "statbox/")
    allowed = declared("core", "notebook", "kubernetes")
    undeclared = {
        module: sorted(map(str, imports[module]))
        for module, names in dists.items()
        if not names & allowed
    }
    assert not undeclared, f"declare these in pyproject.toml (core or an extra): {undeclared}"


def test_the_notebook_stack_stays_out_of_core():
    """The GIS and plotting libraries, scikit-learn and JupyterLab are for user servers,
    kernels and courses: the notebook extra, never what a hub or the command needs."""
    core = declared("core")
    for name in ("jupyterlab", "ipykernel", "matplotlib", "scikit-learn", "geopandas",
                 "shapely", "pyproj", "xarray", "zarr", "dask", "numpy", "pandas"):  # fmt: skip
        assert name not in core, name
        assert name in declared("notebook"), name


def course_sources() -> dict[Path, str]:
    """Code of every course: notebook cells (magics dropped) and modules."""
    sources = {}
    for path in sorted((REPO / "curriculum").rglob("*")):
        if path.suffix == ".py" and "__pycache__" not in path.parts:
            sources[path] = path.read_text()
        elif path.suffix == ".ipynb" and ".ipynb_checkpoints" not in path.parts:
            cells = json.loads(path.read_text())["cells"]
            code = ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]
            lines = [
                line
                for cell in code
                for line in cell.splitlines()
                if not line.lstrip().startswith(("%", "!"))
            ]
            sources[path] = "\n".join(lines)
    return sources


def test_what_the_courses_import_is_in_the_notebook_extra_or_core():
    needed: dict[str, set[str]] = {}
    for path, source in course_sources().items():
        course = path.relative_to(REPO / "curriculum").parts[0]
        local = {p.stem for p in (REPO / "curriculum" / course).rglob("*.py")}
        for module in third_party(imported_modules(source)) - local - {"statbox"}:
            needed.setdefault(module, set()).add(str(path.relative_to(REPO)))
    assert "sklearn" in needed and "matplotlib" in needed
    allowed = declared("core", "notebook")
    missing = {
        module: sorted(needed[module])
        for module, names in distributions(set(needed), "curriculum/").items()
        if not names & allowed
    }
    assert not missing, f"add these to the notebook extra: {missing}"


DATATYPE_IMPORTS = {"Zarr": {"zarr"}, "Parquet": {"pyarrow"}}
"""What a data type needs beyond its reader's own ``imports``."""


def test_what_the_catalog_readers_need_is_in_the_notebook_extra_or_core():
    from intake import import_name

    needed: set[str] = set()
    for file in sorted((REPO / "catalogs").glob("*.yaml")):
        catalog = yaml.safe_load(file.read_text())
        for entry in (catalog.get("entries") or {}).values():
            if isinstance(entry, dict) and "reader" in entry:
                needed |= set(getattr(import_name(entry["reader"]), "imports", set()))
        for data in (catalog.get("data") or {}).values():
            if isinstance(data, dict) and "datatype" in data:
                needed |= DATATYPE_IMPORTS.get(data["datatype"].split(":")[-1], set())
    assert {"pandas", "geopandas", "xarray", "zarr"} <= needed
    allowed = declared("core", "notebook")
    missing = sorted(
        m for m, names in distributions(needed, "catalogs/").items() if not names & allowed
    )
    assert not missing, f"add these to the notebook extra: {missing}"


def pins(lines: list[str]) -> dict[str, str]:
    found = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split(" ")[0].split("==")
            found[canonical(name)] = version
    return found


def test_pins_live_in_one_place():
    """pyproject.toml holds ranges only; constraints.txt pins every package it names."""
    groups = {"core": PROJECT["dependencies"], **EXTRAS}
    exact = [req for reqs in groups.values() for req in reqs if "==" in req or "===" in req]
    assert not exact, f"exact pins belong in requirements/constraints.txt: {exact}"
    pinned = pins((REPO / "requirements" / "constraints.txt").read_text().splitlines())
    unpinned = sorted(declared("core", *EXTRAS) - set(pinned))
    assert not unpinned, f"pin these in requirements/constraints.txt: {unpinned}"


def test_the_images_carry_their_extras():
    """The single-user image (and the gateway built on it) carries the notebook extra, the
    hub image the kubernetes extra: each image installs the statbox wheel without its
    dependencies, from its own lock."""
    for image, extra in (("singleuser", "notebook"), ("hub", "kubernetes")):
        lock = pins((REPO / "images" / image / "requirements.txt").read_text().splitlines())
        missing = sorted(declared(extra) - set(lock))
        assert not missing, f"images/{image}/requirements.in lacks {extra} packages: {missing}"


def test_a_command_missing_an_extra_names_it():
    """Every module statbox imports from an extra (not core) is in the CLI's table, so a
    command run without that extra says which one to install instead of a traceback."""
    from statbox.cli import EXTRA_OF

    imports = statbox_imports()
    dists = distributions(set(imports), "statbox/")
    core = declared("core")
    for extra in ("notebook", "kubernetes"):
        wanted = {m for m, names in dists.items() if names & declared(extra) and not names & core}
        assert wanted, extra
        assert {m: EXTRA_OF.get(m) for m in wanted} == dict.fromkeys(wanted, extra)


def test_a_missing_extra_is_one_line_and_exit_3(monkeypatch, capsys):
    import statbox.cli as cli

    def needs_geopandas(args):
        raise ModuleNotFoundError("No module named 'geopandas'", name="geopandas")

    monkeypatch.setattr(cli, "cmd_config_defaults", needs_geopandas)
    assert cli.main(["config", "defaults"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'notebook' extra" in err and "statbox[notebook]" in err
