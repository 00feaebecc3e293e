"""Offline bundles: create (and reuse), refuse a damaged bundle with nothing changed, install
with every package index unreachable, run the installed hub, upgrade keeping users' files.

Fixtures here:
- ``workdir``: a folder every account can traverse (the installed hub runs servers as an
  unprivileged account when the tests run as root), removed at the end.
- ``bundle``: one bundle made by ``statbox bundle create --mode local`` for the module, its
  parts cached in ``workdir``.
- ``elsewhere``: an empty folder outside the checkout. The installer and the installed
  ``statbox`` run there, as on a machine with no checkout: run from the checkout, ``python -m``
  would import the checkout's statbox instead of the installed one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from statbox.modes.local.stack import find_proxy, free_port
from tests.conftest import REPO, require_tool
from tests.integration.conftest import PASSWORDS, assert_all_gone
from tests.integration.hubclient import HubUser, StatboxProcess

pytestmark = [pytest.mark.bundle, pytest.mark.slow]

# Where an install would go for packages if it tried: nothing listens there.
NO_NETWORK = {
    "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
    "PIP_EXTRA_INDEX_URL": "",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
}


def statbox(*args: str) -> subprocess.CompletedProcess[str]:
    """The checkout's statbox (``bundle create`` builds from the checkout)."""
    return subprocess.run(
        [sys.executable, "-m", "statbox.cli", *args],
        capture_output=True,
        text=True,
        timeout=1800,
    )


def outside_env() -> dict[str, str]:
    """The environment of the installed statbox: no package index, no STATBOX_* variables."""
    kept = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("STATBOX_") and key not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    return {**kept, **NO_NETWORK}


def installed(
    prefix: Path, where: Path, *args: str, env: dict | None = None
) -> subprocess.CompletedProcess[str]:
    """The installed ``statbox`` command, run from ``where`` (outside the checkout)."""
    return subprocess.run(
        [str(prefix / "current" / "venv" / "bin" / "statbox"), *args],
        capture_output=True,
        text=True,
        env={**outside_env(), **(env or {})},
        cwd=where,
        timeout=1800,
    )


def bootstrap(bundle: Path, prefix: Path, where: Path) -> subprocess.CompletedProcess[bytes]:
    """Install as an operator does on a bare machine: ``tar -xOf B install.py | python3 - B``
    (tar's own complaint about a truncated bundle does not stop the pipe, as in a shell)."""
    installer = subprocess.run(
        ["tar", "-xOf", str(bundle), "install.py"], capture_output=True
    ).stdout
    return subprocess.run(
        [sys.executable, "-", str(bundle), "--prefix", str(prefix)],
        input=installer,
        capture_output=True,
        env=outside_env(),
        cwd=where,
        timeout=1800,
    )


def snapshot(root: Path) -> dict[str, bytes | None]:
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
        for p in sorted(root.rglob("*"))
        if "venv" not in p.relative_to(root).parts  # compared by what it runs, below
    }


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    require_tool("configurable-http-proxy", find_proxy() is not None)
    directory = Path(tempfile.mkdtemp(prefix="statbox-bundle-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def elsewhere(workdir) -> Path:
    directory = workdir / "elsewhere"
    directory.mkdir(mode=0o755)
    assert not directory.resolve().is_relative_to(REPO)
    return directory


@pytest.fixture(scope="module")
def bundle(workdir) -> Path:
    out = workdir / "statbox-bundle.tar"
    made = statbox(
        "bundle", "create", "--mode", "local", "--out", str(out), "--cache", str(workdir / "cache")
    )
    assert made.returncode == 0, made.stderr
    print(made.stdout)  # the size and parts, for the record
    return out


def test_bundle_holds_everything_with_checksums(bundle):
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())
    assert names[:4] == ["install.py", "manifest.json", "manifest.sha256", "README.txt"]
    assert set(manifest["files"]) == set(names) - {"manifest.json", "manifest.sha256"}
    wheels = [n for n in names if n.startswith("wheelhouse/")]
    assert any(n.startswith("wheelhouse/statbox-") for n in wheels)
    assert any(n.startswith("wheelhouse/jupyterhub-") for n in wheels)
    assert "catalogs/statbox.yaml" in names and "data/samples.json" in names
    assert "curriculum/getting-started/course.yaml" in names
    assert "chart/statbox-chart.tgz" in names
    assert any(n.endswith("configurable-http-proxy/bin/configurable-http-proxy") for n in names)


def test_second_run_with_nothing_changed_reuses_every_part(bundle, workdir):
    again = statbox(
        "bundle", "create", "--mode", "local", "--out", str(workdir / "again.tar"),
        "--cache", str(workdir / "cache"),
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "built: nothing" in again.stdout
    (workdir / "again.tar").unlink()


def damaged_copies(bundle: Path, workdir: Path) -> dict[str, Path]:
    data = bundle.read_bytes()
    with tarfile.open(bundle) as tar:
        wheel = next(m for m in tar.getmembers() if m.name.startswith("wheelhouse/jupyterhub-"))
        manifest = tar.getmember("manifest.json")
    cases = {
        "byte flipped in a wheel": wheel.offset_data + wheel.size // 2,
        "byte flipped in the manifest's version": manifest.offset_data
        + data[manifest.offset_data :].index(b'"statbox_version"')
        + 21,
    }
    copies = {}
    for name, offset in cases.items():
        damaged = bytearray(data)
        damaged[offset] ^= 0x01
        copies[name] = workdir / f"{name.replace(' ', '-')}.tar"
        copies[name].write_bytes(bytes(damaged))
    copies["truncated"] = workdir / "truncated.tar"
    copies["truncated"].write_bytes(data[: len(data) * 2 // 3])
    return copies


def test_damaged_bundle_is_refused_and_nothing_changes(bundle, workdir, elsewhere):
    prefix = workdir / "untouched"
    for case, copy in damaged_copies(bundle, workdir).items():
        result = bootstrap(copy, prefix, elsewhere)
        stderr = result.stderr.decode()
        assert result.returncode == 2, (case, stderr)
        assert "Traceback" not in stderr, case
        assert "damaged" in stderr or "truncated" in stderr or "differs" in stderr, (case, stderr)
        assert not prefix.exists(), case
        copy.unlink()


PROBE = textwrap.dedent(
    """
    import json, os, subprocess, sys
    import papermill
    # the course material the release serves this trainee (homes get courses when published)
    course = os.path.join(os.environ["STATBOX_CURRICULUM"], "getting-started", "01-welcome.ipynb")
    out = os.path.expanduser("~/welcome-run.ipynb")
    papermill.execute_notebook(course, out, kernel_name="python3", progress_bar=False)
    print(json.dumps({"python": sys.executable, "ran": os.path.exists(out)}))
    """
)


IMPORTED = textwrap.dedent(
    """
    import json, sys
    import statbox, papermill, jupyterlab, geopandas
    print(json.dumps({
        name: module.__file__ for name, module in sys.modules.items()
        if name.split(".")[0] in ("statbox", "papermill", "jupyterlab", "geopandas")
        and getattr(module, "__file__", None)
    }))
    """
)


def test_install_offline_runs_a_course_and_upgrades_keeping_homes(bundle, workdir, elsewhere):
    prefix = workdir / "opt-statbox"
    done = bootstrap(bundle, prefix, elsewhere)
    assert done.returncode == 0, done.stderr.decode()
    venv = prefix / "current" / "venv"
    python = str(venv / "bin" / "python")
    settings = prefix / "statbox.yaml"
    checked = installed(prefix, elsewhere, "config", "check", str(settings))
    assert checked.returncode == 0, checked.stderr
    assert "mode: local" in settings.read_text()

    # statbox, and the notebook extra beside it, are the install's own, from any folder.
    imported = subprocess.run(
        [python, "-c", IMPORTED], capture_output=True, text=True, cwd=elsewhere,
        env=outside_env(),
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    site = next((venv / "lib").glob("python3*/site-packages")).resolve()
    files = json.loads(imported.stdout)
    assert Path(files["statbox"]).resolve() == site / "statbox" / "__init__.py"
    for name, file in files.items():
        assert Path(file).resolve().is_relative_to(site), (name, file)
    listed = installed(prefix, elsewhere, "course", "list", "--config", str(settings))
    assert listed.returncode == 0, listed.stderr
    assert "getting-started" in listed.stdout

    # The installed hub starts, with the installed proxy, and a trainee runs a course notebook.
    stack = StatboxProcess(
        settings, free_port(), prefix / "state", env={
            "STATBOX_USER_PASSWORD": PASSWORDS["user"],
            "STATBOX_ADMIN_PASSWORD": PASSWORDS["admin"],
        },
        python=python, command=str(venv / "bin" / "statbox"), cwd=elsewhere,
    )  # fmt: skip
    stack.start(timeout=300)
    try:
        alice = HubUser(stack.base_url, "alice")
        alice.login(PASSWORDS["user"])
        alice.create_token()
        alice.start_server(timeout=300)
        result = alice.run(PROBE, timeout=300)
        assert result.error is None, result.stderr
        # the servers run the interpreter of the release the hub runs from
        release_python = (prefix / "current").resolve() / "venv" / "bin" / "python"
        assert result.json() == {"python": str(release_python), "ran": True}
        tree = stack.process_tree()
    finally:
        stack.stop()
    assert_all_gone(tree)
    home = prefix / "state" / "homes" / "alice"
    before = snapshot(home)
    assert "welcome-run.ipynb" in before
    settings.write_text(settings.read_text() + "hub:\n  name: Statbox Apia\n")

    # A newer bundle (another course file) installs over it: homes and settings stay.
    newer = workdir / "newer.tar"
    course = REPO / "curriculum" / "getting-started"
    extra = course / "NEWS.md"
    extra.write_text("A new lesson next week.\n")
    try:
        made = statbox(
            "bundle", "create", "--mode", "local", "--out", str(newer),
            "--cache", str(workdir / "cache"),
        )  # fmt: skip
    finally:
        extra.unlink()
    assert made.returncode == 0, made.stderr
    # the curriculum part, and the statbox wheel, which carries the courses too; not the
    # wheelhouse of everything else
    built = re.search(r"built: ([^;]*);", made.stdout)
    assert built is not None, made.stdout
    parts = set(built.group(1).split(", "))
    assert {"statbox", "curriculum"} <= parts and "packages" not in parts, made.stdout
    first = (prefix / "current").resolve()
    upgraded = bootstrap(newer, prefix, elsewhere)
    assert upgraded.returncode == 0, upgraded.stderr.decode()
    assert (prefix / "current").resolve() != first
    assert (prefix / "current" / "curriculum" / "getting-started" / "NEWS.md").exists()
    assert snapshot(home) == before
    assert "Statbox Apia" in settings.read_text()
    checked = installed(prefix, elsewhere, "config", "check", str(settings))
    assert checked.returncode == 0, checked.stderr
