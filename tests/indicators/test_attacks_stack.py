"""Attacks on the indicators service of a real local stack (hub, proxy, the service and its
scheduler, kernels in the grading sandbox), as its owner ``ana`` and as a forger.

``prowl`` (pilot, ana's, run by hand) is a notebook that looks, from inside a run the service
started, for everything of the hub's it must never reach: the service's environment (the hub
API token), any process's environment, the state directory (secrets, other indicators'
runs), the settings file, the hub over the network. Finding anything, it raises with the
list, which the run's record then shows to every reader of the page; finding nothing, it
publishes. A forged form POST (ana's cookies, no XSRF token) starts nothing.
"""

from __future__ import annotations

import re
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.indicators.conftest import notebook
from tests.integration.conftest import (
    PASSWORDS,
    SETTINGS,
    assert_all_gone,
    make_stack,
    stopped_whatever_happens,
)
from tests.integration.test_indicators_service import INDICATOR, PREFIX, Person, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROWL = """\
import glob, os, socket
found = []
for name, value in os.environ.items():
    if "TOKEN" in name or "JUPYTERHUB" in name or "SECRET" in name or "PASSWORD" in name:
        found.append(f"env {{name}}")
for path in glob.glob("/proc/[0-9]*/environ"):
    try:
        if b"JUPYTERHUB_API_TOKEN" in open(path, "rb").read():
            found.append(path)
    except OSError:
        pass
for path in {paths!r}:
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            open(path, "rb").read(1)
        found.append(path)
    except OSError:
        pass
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=3).close()
    found.append("the hub at port {port}")
except OSError:
    pass
assert not found, "reached: " + ", ".join(found)
with open(output, "w") as handle:
    handle.write("FREQ,REF_AREA,INDICATOR,TIME_PERIOD,OBS_VALUE,UNIT_MEASURE,OBS_STATUS\\n")
    handle.write(f"W,north,TICKS,{{week}},1,NUMBER,A\\n")
"""


@pytest.fixture(scope="module")
def attack_stack() -> Iterator:
    """One local stack (tests/integration/conftest.py's) with the ``prowl`` indicator."""
    directory = Path(tempfile.mkdtemp(prefix="statbox-attack-"))
    directory.chmod(0o755)
    config = directory / "statbox.yaml"
    config.write_text(SETTINGS.format(repo=REPO))
    stack = make_stack(config)
    root = directory / "indicators"
    folder = root / "prowl"
    folder.mkdir(parents=True)
    state = stack.state_dir
    paths = [str(state / "secrets"), str(state / "indicators"), str(config), str(state)]
    paths += [str(state / "run" / "ports.json"), str(REPO / ".git")]
    (folder / "indicator.yaml").write_text(
        INDICATOR.format(id="prowl", stage="pilot", schedule="", backfill="")
    )
    (folder / "indicator.ipynb").write_text(notebook(PROWL.format(paths=paths, port=stack.port)))
    for path in (root, folder, *folder.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    text = re.sub(r"^  indicators: .*$", f"  indicators: {root}", config.read_text(), flags=re.M)
    assert f"  indicators: {root}\n" in text
    config.write_text(text + "indicators:\n  retries: 0\n  retry_delay_seconds: 0\n")
    try:
        with stopped_whatever_happens(stack):
            stack.start()
            yield stack
            tree = stack.process_tree()
            stack.stop(signal.SIGTERM)
            assert_all_gone(tree)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_a_forged_post_with_the_owners_cookie_starts_nothing(attack_stack) -> None:
    ana = Person(attack_stack, "ana", PASSWORDS["user"])
    for path in (
        "prowl/run",
        "prowl/promote",
        "api/indicators/prowl/run",
        "api/indicators/prowl/promote",
    ):
        forged = ana.user.session.post(
            f"{ana.base}{path}",
            data={"stage": "production"},
            headers={"Origin": "http://attacker.invalid", "Referer": "http://attacker.invalid/"},
            allow_redirects=False,
            timeout=60,
        )
        assert forged.status_code in (302, 403), (path, forged.status_code, forged.text[:200])
    time.sleep(3)
    view = ana.user.api("GET", f"{PREFIX}api/indicators/prowl").json()
    assert view["runs"] == [] and view["stage"] == "pilot"


def test_a_run_started_by_the_service_reaches_nothing_of_the_hubs(attack_stack) -> None:
    ana = Person(attack_stack, "ana", PASSWORDS["user"])
    assert ana.post_form("prowl/run", {}).status_code == 303
    runs = wait_for(
        "ana's run",
        lambda: ana.user.api("GET", f"{PREFIX}api/indicators/prowl").json()["runs"],
        180,
    )
    assert runs[0]["outcome"] == "succeeded", runs[0]["error"]
    # what it looked for is there to find, outside the sandbox: the attack is real
    state = attack_stack.state_dir
    assert (state / "secrets").is_dir() and any((state / "secrets").iterdir())
    assert (state / "indicators" / "prowl" / "runs").is_dir()
    services = [
        p for p in attack_stack.process_tree() if "statbox.indicators.web" in " ".join(p.cmdline())
    ]
    assert services and "JUPYTERHUB_API_TOKEN" in services[0].environ()
