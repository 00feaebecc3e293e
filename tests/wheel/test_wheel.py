"""The package carries everything it reads at run time: the statbox wheel, installed into a
new virtual environment outside the checkout, runs from an empty directory with nothing of
the checkout in sight.

Fixtures here:
- ``wheel``: one wheel for the module, built by ``pip wheel --no-deps`` from a copy of the
  checkout (setuptools writes build/ and egg-info into the tree it builds). The copy keeps
  the links under statbox/resources, so the wheel shows that a build follows them.
- ``venv``: a new virtual environment in a temporary folder, the wheel installed with no
  index and no dependencies. The third-party packages come from the checkout's environment,
  made visible by a path line in a .pth file: a path line does not run the .pth files of the
  folder it names, so the checkout's editable install of statbox (a finder that a .pth file
  there installs) stays out, and ``import statbox`` can only find the wheel's copy.
- ``workdir``: an empty folder outside the checkout; every command runs there, with HOME
  another empty folder, no STATBOX_* variables, and DOCKER_HOST naming a socket that is not
  there (the answer without a Docker engine is the same on every machine).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from statbox.i18n import LANGUAGES, SOURCE_LANGUAGE, catalog_path
from tests.conftest import REPO

pytestmark = [pytest.mark.wheel, pytest.mark.slow]

RESOURCES = "statbox/resources"
SHIPPED_FOLDERS = ("catalogs", "curriculum", "indicators")
"""Folders of the checkout the package carries as statbox/resources/<name> (links there)."""
ROOT_SKIPPED = {
    ".git", ".venv", ".statbox", "node_modules", "build", "dist", "data", "tests", "bench",
    ".pytest_cache", ".ruff_cache", ".mypy_cache",
}  # fmt: skip
"""Folders at the top of the checkout that a copy to build from leaves out."""


def _copy_ignore(directory: str, names: list[str]) -> set[str]:
    top = Path(directory).resolve() == REPO
    return {
        name
        for name in names
        if name == "__pycache__" or name.endswith(".egg-info") or (top and name in ROOT_SKIPPED)
    }


def _shipped_files(folder: str) -> dict[str, Path]:
    """Every file of the checkout's ``folder`` a wheel carries, by its path in the wheel."""
    root = REPO / folder
    return {
        f"{RESOURCES}/{folder}/{path.relative_to(root).as_posix()}": path
        for path in sorted(root.rglob("*"))
        if path.is_file()
        and "__pycache__" not in path.parts
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
    }


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="statbox-wheel-"))
    assert not directory.resolve().is_relative_to(REPO)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def wheel(scratch: Path) -> Path:
    source = scratch / "src"
    shutil.copytree(REPO, source, symlinks=True, ignore=_copy_ignore)
    assert (source / RESOURCES / "curriculum").is_symlink()  # the links, as in a checkout
    out = scratch / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (found,) = out.glob("statbox-*.whl")
    return found


def _site_packages(venv: Path) -> Path:
    (found,) = venv.glob("lib/python3*/site-packages")
    return found


@pytest.fixture(scope="module")
def venv(scratch: Path, wheel: Path) -> Path:
    venv = scratch / "venv"
    made = subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    assert made.returncode == 0
    python = venv / "bin" / "python"
    # Installed before the checkout's packages are made visible: pip must see no statbox there.
    installed = subprocess.run(
        [
            sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
            "--no-index", "--no-deps", str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    checkout_packages = dict.fromkeys(
        [sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]
    )
    assert not any(Path(p).resolve() == REPO for p in checkout_packages)
    (_site_packages(venv) / "statbox-test-third-party.pth").write_text(
        "".join(f"{path}\n" for path in checkout_packages)
    )
    return venv


@pytest.fixture(scope="module")
def workdir(scratch: Path) -> Path:
    directory = scratch / "work"
    directory.mkdir()
    return directory


@pytest.fixture(scope="module")
def env(scratch: Path, venv: Path) -> dict[str, str]:
    home = scratch / "home"
    home.mkdir()
    unset = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "DOCKER_HOST"}
    kept = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("STATBOX_") and key not in unset
    }
    return {
        **kept,
        "HOME": str(home),
        "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "DOCKER_HOST": f"unix://{scratch / 'no-docker-engine.sock'}",
    }


def run(
    command: list[str], workdir: Path, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout
    )


def statbox(venv: Path, workdir: Path, env: dict[str, str], *args: str):
    return run([str(venv / "bin" / "statbox"), *args], workdir, env)


# ------------------------------------------------------------------------------- the wheel


def test_wheel_carries_every_resource_as_files(wheel):
    with zipfile.ZipFile(wheel) as archive:
        members = {info.filename: info for info in archive.infolist()}
        for name in ("statbox/py.typed", "statbox/resources/__init__.py"):
            assert name in members, name
        for name in ("statbox.yaml", "compose.yaml", "hub_config.py", "gateway_config.py"):
            member = f"{RESOURCES}/{name}"
            assert member in members, member
            assert archive.read(member) == (REPO / RESOURCES / name).read_bytes(), member
        for folder in SHIPPED_FOLDERS:
            expected = _shipped_files(folder)
            assert expected, folder
            carried = {name for name in members if name.startswith(f"{RESOURCES}/{folder}/")}
            assert carried == set(expected), folder
            for name, path in expected.items():
                assert archive.read(name) == path.read_bytes(), name
        links = [n for n, info in members.items() if stat.S_ISLNK(info.external_attr >> 16)]
        assert links == []
    assert "statbox/resources/curriculum/getting-started/course.yaml" in members
    assert "statbox/resources/indicators/ais-port-calls/indicator.yaml" in members
    assert "statbox/indicators/web/templates/indicator.html" in members
    # the pages in every language: the catalogs and the hub's own templates
    for language in set(LANGUAGES) - {SOURCE_LANGUAGE}:
        assert f"statbox/i18n/{catalog_path(language)}" in members, language
    for page in ("page.html", "login.html", "error.html", "404.html"):
        assert f"statbox/identity/templates/{page}" in members, page


# ---------------------------------------------------------------- installed, run elsewhere

PROBE = textwrap.dedent(
    """
    import json, sys
    import statbox
    from statbox import resources
    from statbox.modes.docker.stack import COMPOSE_FILE
    from statbox.settings.model import DEFAULTS_FILE, load_settings

    loaded = load_settings(None)
    print(json.dumps({
        "statbox": statbox.__file__,
        "modules": sorted(
            getattr(module, "__file__", None) or ""
            for name, module in sys.modules.items()
            if name == "statbox" or name.startswith("statbox.")
        ),
        "editable_finder": sorted(name for name in sys.modules if "__editable__" in name),
        "resources": [
            str(resources.resource(name))
            for name in (resources.DEFAULT_SETTINGS, resources.COMPOSE, resources.HUB_CONFIG,
                         resources.GATEWAY_CONFIG, resources.CATALOGS, resources.CURRICULUM,
                         resources.INDICATORS)
        ],
        "defaults": str(DEFAULTS_FILE),
        "compose": str(COMPOSE_FILE),
        "catalog": str(loaded.paths.catalog),
        "curriculum": str(loaded.paths.curriculum),
        "indicators": str(loaded.paths.indicators),
    }))
    """
)


def test_statbox_is_the_wheel_and_its_resources_are_inside_the_install(venv, scratch, env):
    empty = scratch / "probe"
    empty.mkdir()
    done = run([str(venv / "bin" / "python"), "-c", PROBE], empty, env)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    installed = _site_packages(venv) / "statbox"
    assert Path(found["statbox"]).parent == installed
    assert found["editable_finder"] == []
    for module in found["modules"]:
        assert Path(module).is_relative_to(installed), module
    paths = [*found["resources"], found["defaults"], found["compose"]]
    paths += [found["catalog"], found["curriculum"], found["indicators"]]
    for path in map(Path, paths):
        assert path.is_relative_to(installed / "resources"), path
        assert path.exists(), path
        assert not path.resolve().is_relative_to(REPO), path
    assert list(empty.iterdir()) == []  # loading the settings wrote nothing here


def test_config_check(venv, workdir, env, scratch):
    # no file here: the settings in effect are the built-in defaults the wheel carries
    done = statbox(venv, workdir, env, "config", "check")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "<built-in defaults>: valid (local mode)"
    settings = scratch / "settings" / "statbox.yaml"
    settings.parent.mkdir()
    settings.write_text("hub:\n  name: Statbox from a wheel\nmode: docker\n")
    done = statbox(venv, workdir, env, "config", "check", str(settings))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{settings}: valid (docker mode)"
    defaults = statbox(venv, workdir, env, "config", "defaults")
    assert defaults.returncode == 0, defaults.stderr
    assert defaults.stdout == (REPO / RESOURCES / "statbox.yaml").read_text()


def test_course_list_reads_the_packaged_curriculum(venv, workdir, env):
    assert not (workdir / "curriculum").exists()
    done = statbox(venv, workdir, env, "course", "list")
    assert done.returncode == 0, done.stderr
    listed = [line.split()[0] for line in done.stdout.splitlines()[1:] if line.strip()]
    shipped = sorted(p.parent.name for p in (REPO / "curriculum").glob("*/course.yaml"))
    assert "getting-started" in listed
    assert listed == shipped


@pytest.fixture(scope="module")
def samples(venv, workdir, env) -> subprocess.CompletedProcess[str]:
    return statbox(venv, workdir, env, "catalog", "samples")


def test_catalog_samples_written_under_the_working_directory(samples, workdir):
    assert samples.returncode == 0, samples.stderr
    assert samples.stdout.startswith(f"{workdir / 'data'}: ")
    assert (workdir / "data" / "samples.json").is_file()


def test_up_docker_prepare_fails_only_for_want_of_an_engine(samples, venv, workdir, env):
    """With the catalog, curriculum and compose file found in the package and the samples
    just written, what is missing is the Docker engine: exit 3 and one line, no traceback.
    (Before resources moved into the package, a wheel install failed on compose.yaml.)"""
    assert samples.returncode == 0, samples.stderr
    done = statbox(venv, workdir, env, "up", "--mode", "docker", "--prepare")
    assert done.returncode == 3, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "Docker engine" in lines[0], lines[0]
    for not_about in ("compose", "resources", "No such file", "does not exist"):
        assert not_about not in lines[0], lines[0]


@pytest.mark.parametrize(
    "command",
    [["images", "build"], ["images", "lock"], ["bundle", "create", "--out", "bundle.tar"]],
    ids=["images-build", "images-lock", "bundle-create"],
)
def test_building_from_source_says_it_needs_a_checkout(venv, workdir, env, command):
    """Images and bundles are built from the checkout's images/ and requirements/: from an
    installed wheel the command says so (exit 3, one line) and writes nothing here."""
    before = set(workdir.iterdir())
    done = statbox(venv, workdir, env, *command)
    assert done.returncode == 3, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs a Statbox source checkout" in lines[0], done.stderr
    assert set(workdir.iterdir()) == before
