"""Every shipped translation runs under papermill exactly as its English original: the same
text in every code cell's output, the same figures (checked by the course's grader/verify.py
as the original's), and the translated exercise's reference solution grades at full marks
with the same checks as the English one.

Each notebook runs once: the originals through the shared ``curriculum_runs`` fixture (the
runs test_notebooks.py checks), the translations here, all in one pool of kernels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from statbox.courses import LoadedCourse, load_curriculum
from statbox.courses.exercise import default_parameters, exercise_of, load_checks, score
from statbox.courses.notebooks import cell_tags, read_notebook
from statbox.courses.run import (
    ANSWERS_TAG,
    INJECTED_TAG,
    Environment,
    NotebookJob,
    NotebookRun,
    answers_of,
    course_jobs,
    run_jobs,
    translation_jobs,
)
from statbox.courses.translations import translations_of
from tests.certify.conftest import sandbox  # noqa: F401 (fixture)
from tests.curriculum.conftest import CATALOG, CURRICULUM, THREADS

pytestmark = pytest.mark.curriculum

SOLUTION_LABEL = "solution"


def _curriculum() -> dict[str, LoadedCourse]:
    return load_curriculum(CURRICULUM)


def _translated() -> list[NotebookJob]:
    return [job for loaded in _curriculum().values() for job in translation_jobs(loaded)]


def translated_solution(loaded: LoadedCourse, translation: Path) -> str:
    """The English reference solution with the words of ``translation`` (a translation of the
    exercise template): what a trainee reading that language submits when every answer is
    right. Built from the solution's code (by cell id) so that it stays the solution."""
    assert loaded.course.exercise is not None
    solution = read_notebook(loaded.path(loaded.course.exercise.solution))
    words = {c.get("id"): c["source"] for c in read_notebook(translation)["cells"]}
    for cell in solution["cells"]:
        if cell["cell_type"] != "code" and cell.get("id") in words:
            cell["source"] = words[cell["id"]]
    return json.dumps(solution, ensure_ascii=False)


def _solution_jobs(workdir: Path) -> list[NotebookJob]:
    """A job for each translated solution (:func:`translated_solution`)."""
    jobs = []
    for loaded in _curriculum().values():
        exercise = loaded.course.exercise
        if exercise is None:
            continue
        (job,) = [j for j in course_jobs(loaded) if j.notebook == exercise.solution]
        for language, path in translations_of(loaded.path(exercise.notebook)).items():
            file = workdir / f"{loaded.id}-solution.{language}.ipynb"
            file.write_text(translated_solution(loaded, path))
            jobs.append(
                NotebookJob(
                    loaded,
                    exercise.solution,
                    job.answers,
                    job.tasks,
                    source=file,
                    label=f"{language}-{SOLUTION_LABEL}",
                )
            )
    return jobs


@pytest.fixture(scope="session")
def translation_runs(sample_data, tmp_path_factory) -> dict[str, NotebookRun]:
    workdir = tmp_path_factory.mktemp("translations")
    jobs = _translated() + _solution_jobs(workdir)
    runs = run_jobs(jobs, Environment(CATALOG, sample_data), workdir, threads=THREADS)
    return {run.job.name: run for run in runs}


def text_outputs(executed: Path) -> list[list[str]]:
    """Per code cell of the notebook as written (papermill's and the answers' cells left
    out): the text it printed or displayed, in order. Pictures are left out (a PNG's bytes
    may differ between two runs of the same plot)."""
    texts = []
    for cell in read_notebook(executed)["cells"]:
        if cell["cell_type"] != "code" or {INJECTED_TAG, ANSWERS_TAG} & set(cell_tags(cell)):
            continue
        shown: list[str] = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                # one print may reach the notebook in several pieces, cut wherever the
                # kernel flushed: a stream's text is compared whole
                text = f"{output.get('name')}: {_text(output.get('text', ''))}"
                if shown and shown[-1].startswith(f"{output.get('name')}: "):
                    text = shown.pop() + _text(output.get("text", ""))
                shown.append(text)
            elif "data" in output:
                shown.append(_text(output["data"].get("text/plain", "")))
            elif output.get("output_type") == "error":
                shown.append(f"{output.get('ename')}: {output.get('evalue')}")
        texts.append(shown)
    return texts


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


@pytest.mark.parametrize("translation", sorted(job.name for job in _translated()))
def test_a_translation_runs_with_the_originals_outputs_and_figures(
    translation, translation_runs, curriculum_runs
):
    run = translation_runs[translation]
    assert run.ok, f"{translation}: {run.failure}\n  executed notebook: {run.output}"
    original = curriculum_runs[translation.split("@")[0]]
    assert original.ok, original.failure
    assert text_outputs(run.output) == text_outputs(original.output)
    assert run.results == original.results


@pytest.mark.parametrize(
    "translation",
    sorted(job.name for job in _translated() if job.tasks),
)
def test_the_translated_exercise_grades_the_reference_solution_at_full_marks(
    translation, translation_runs, sample_data
):
    template = translation_runs[translation]
    loaded = template.job.course
    exercise = exercise_of(loaded)
    language = translation.split("@")[1]
    solution = translation_runs[f"{loaded.id}/{exercise.solution}@{language}-{SOLUTION_LABEL}"]
    assert solution.ok and template.ok, (solution.failure, template.failure)
    checks = load_checks(loaded)
    expected = checks.reference(default_parameters(loaded), sample_data)
    full = score(checks.CHECKS, answers_of(solution.results), expected)
    assert all(fraction == 1 for fraction, _ in full.values()), full
    empty = score(checks.CHECKS, answers_of(template.results), expected)
    assert all(fraction == 0 for fraction, _ in empty.values()), empty


TRAINEES = {"pt-BR": "joana", "zh-CN": "wang", "ar": "amal", "fr": "claire"}


@pytest.mark.certify
@pytest.mark.usefixtures("sandbox")
def test_trainees_who_worked_in_a_translation_are_graded_for_real_at_full_marks(
    sample_data, tmp_path
):
    """The real grader (isolated kernels, each trainee's own variant injected) on the
    reference solution as each language's trainee submits it: full marks, and no note telling
    them that the protected text they never touched "was edited"."""
    from statbox.certify.runner import GradingSetup, RunOptions, run
    from tests.certify.conftest import write_secret

    for path in [sample_data, *sample_data.rglob("*")]:  # the sandbox's account reads them
        path.chmod(path.stat().st_mode | 0o555 if path.is_dir() else path.stat().st_mode | 0o444)
    loaded = _curriculum()["ais-port-calls"]
    assert loaded.course.exercise is not None
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    translations = translations_of(loaded.path(loaded.course.exercise.notebook))
    assert sorted(translations) == sorted(TRAINEES)
    for language, path in translations.items():
        (submissions / f"{TRAINEES[language]}.ipynb").write_text(translated_solution(loaded, path))
    write_secret(tmp_path / "state")
    setup = GradingSetup(
        curriculum=CURRICULUM, data_root=sample_data, state_dir=tmp_path / "state", catalog=CATALOG
    )
    summary = run(
        setup, RunOptions(loaded.id, None, submissions, tmp_path / "out", workers=2), progress=False
    )
    by = {attempt.trainee: attempt for attempt in summary.attempts}
    assert sorted(by) == sorted(TRAINEES.values())
    assert len({repr(attempt.variant) for attempt in by.values()}) > 1  # their own variants
    for name, attempt in by.items():
        assert attempt.total == attempt.max_score, (name, attempt.scores, attempt.reason)
        assert "edited" not in attempt.reason, (name, attempt.reason)
