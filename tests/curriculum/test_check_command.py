"""``statbox course check``: runs every notebook of the named courses with real kernels,
reports the cell that failed and figures that disagree, and exits 1; 0 when all agree."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from statbox.cli import main
from tests.curriculum.conftest import CATALOG

pytestmark = pytest.mark.curriculum

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "courses"


@pytest.fixture
def config(tmp_path) -> str:
    for name in ("sample-course", "broken-course"):
        shutil.copytree(FIXTURES / name, tmp_path / "curriculum" / name)
    (tmp_path / "data").mkdir()
    settings = tmp_path / "statbox.yaml"
    settings.write_text(
        f"paths:\n  curriculum: curriculum\n  catalog: {CATALOG}\n  data_root: data\n"
    )
    return str(settings)


def test_check_passes_a_good_course(capsys, config, tmp_path):
    code = main(["course", "check", "sample-course", "--config", config, "--jobs", "3"])
    out, _ = capsys.readouterr()
    assert code == 0, out
    assert sorted(line.split()[2] for line in out.splitlines() if line.startswith("[ok  ]")) == [
        "sample-course/01-lesson.ipynb",
        "sample-course/exercise/exercise.ipynb",
        "sample-course/grader/solution.ipynb",
    ]
    assert out.splitlines()[-1] == "3 passed, 0 failed"


def test_check_names_the_failing_cell_and_the_disagreeing_figure(capsys, config, tmp_path):
    output = tmp_path / "executed"
    code = main(["course", "check", "--config", config, "--output", str(output), "--jobs", "3"])
    out, _ = capsys.readouterr()
    assert code == 1
    assert out.splitlines()[-1] == "3 passed, 2 failed"
    assert (
        "broken-course/01-fails.ipynb: cell 3 failed ('ratio = 1 / seed'): "
        "ZeroDivisionError: division by zero"
    ) in out
    assert (
        "broken-course/02-wrong-figures.ipynb: figures disagree with grader/verify.py: "
        "total is 15, the sum of 0..4 is 10"
    ) in out
    executed = output / "broken-course__01-fails" / "executed.ipynb"
    assert f"executed notebook: {executed}" in out
    assert "ZeroDivisionError" in executed.read_text()


def test_check_refuses_a_missing_data_root(capsys, config, tmp_path):
    code = main(["course", "check", "--config", config, "--data-root", str(tmp_path / "nope")])
    _, err = capsys.readouterr()
    assert code == 2
    assert "does not exist: generate the samples (statbox catalog samples --out" in err
