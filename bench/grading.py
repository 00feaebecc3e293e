"""Grading throughput: ``statbox certify run --workers N`` against a sequential loop of the
papermill CLI, in the same run, on the same submissions, with the same scores.

    python bench/grading.py [--submissions 40] [--workers 4]
    python bench/grading.py --stress 500 [--workers 8]

The submissions are the certify tests' exercise (``tests/fixtures/courses/shop-prices``):
mostly reference solutions, some untouched templates and half-done ones, each trainee with
their own variant. The baseline is what an instructor does without Statbox: for each
notebook, one ``papermill`` process with the trainee's parameters and a fresh kernel; its
answers are read and scored by the same checks, so both sides must agree on every score.

``--stress N`` grades N submissions (N kernels, ``--workers`` at a time) and counts the
failures a kernel-port race would cause (papermill#511: a kernel that does not start or
loses its connection). Statbox's kernels talk over IPC sockets, so there must be none.
Timings depend on the machine: read the ratio, measured in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import nbformat  # noqa: E402

from statbox.certify import notebook as nbops  # noqa: E402
from statbox.certify.exercise import find_course, load_exercise  # noqa: E402
from statbox.certify.pipeline import run_check  # noqa: E402
from statbox.certify.variants import parameters_for  # noqa: E402
from tests.certify.sampledata import CATALOG, write_sample_data  # noqa: E402

COURSES = REPO / "tests" / "fixtures" / "courses"
COURSE = "shop-prices"
SECRET = bytes(range(32))
BIN = Path(sys.executable).parent


def make_submissions(directory: Path, count: int) -> dict[str, bytes]:
    loaded = find_course(COURSES, COURSE)
    exercise = loaded.course.exercise
    assert exercise is not None
    solution = loaded.path(exercise.solution).read_bytes()
    template = loaded.path(exercise.notebook).read_bytes()
    nb = json.loads(solution)
    nb["cells"].append(
        {
            "cell_type": "code",
            "id": "undo",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
            "source": "mean_price = None",
        }
    )
    partial = json.dumps(nb).encode()
    notebooks = {}
    for index in range(count):
        kind = index % 8
        content = template if kind == 6 else partial if kind == 7 else solution
        notebooks[f"trainee{index:03d}"] = content
        (directory / f"trainee{index:03d}.ipynb").write_bytes(content)
    return notebooks


def papermill_loop(notebooks: dict[str, bytes], work: Path, data_root: Path) -> dict[str, float]:
    """The baseline: one papermill CLI process per notebook, one after the other."""
    exercise = load_exercise(find_course(COURSES, COURSE))
    variables = [task.answer_variable for task in exercise.exercise.tasks]
    env = {**os.environ, "STATBOX_DATA_ROOT": str(data_root)}
    scores = {}
    for trainee, content in notebooks.items():
        nb = nbops.read_submission(content)
        nb, _ = nbops.restore_protected(exercise.template, nb)
        nb = nbops.add_answers_cell(nbops.papermill_ready(nb), variables)
        source, output = work / f"{trainee}.in.ipynb", work / f"{trainee}.out.ipynb"
        source.write_text(json.dumps(nb))
        parameters = parameters_for(exercise.loaded, trainee, SECRET)
        command = [
            str(BIN / "papermill"),
            str(source),
            str(output),
            "-k",
            "python3",
            "--no-progress-bar",
            "--cwd",
            str(work),
        ]
        for name, value in parameters.items():
            command += ["-p", name, str(value)]
        subprocess.run(command, env=env, check=True, capture_output=True)
        answers = nbops.read_answers(nbformat.read(output, as_version=4)) or {}
        expected = exercise.reference({**exercise.allowed, **parameters}, data_root)
        total = 0.0
        for task in exercise.exercise.tasks:
            fraction, _ = run_check(
                exercise.checks[task.id], answers.get(task.answer_variable), expected[task.id]
            )
            total += round(task.points * fraction, 2)
        scores[trainee] = round(total, 2)
    return scores


def write_config(root: Path, data_root: Path) -> Path:
    state = root / "state"
    (state / "secrets" / "certify").mkdir(parents=True)
    (state / "secrets" / "certify" / "default.key").write_text(SECRET.hex() + "\n")
    config = root / "statbox.yaml"
    config.write_text(
        f"paths: {{curriculum: {COURSES}, data_root: {data_root}, state_dir: {state}}}\n"
    )
    return config


def statbox_run(config: Path, submissions: Path, out: Path, workers: int) -> dict[str, float]:
    command = [
        str(BIN / "statbox"),
        "certify",
        "run",
        "--course",
        COURSE,
        "--exercise",
        "exercise",
        "--submissions",
        str(submissions),
        "--out",
        str(out),
        "--workers",
        str(workers),
        "--quiet",
        "--config",
        str(config),
    ]
    subprocess.run(command, check=True, capture_output=True)
    with open(out / "results.csv") as handle:
        import csv

        return {row["trainee"]: float(row["score"]) for row in csv.DictReader(handle)}


def stress(count: int, workers: int, root: Path, data_root: Path) -> int:
    from statbox.certify.runner import GradingSetup, RunOptions, run

    submissions = root / "stress"
    submissions.mkdir()
    solution = (COURSES / COURSE / "grader" / "solution.ipynb").read_bytes()
    for index in range(count):
        (submissions / f"s{index:04d}.ipynb").write_bytes(solution)
    state = root / "stress-state"
    (state / "secrets" / "certify").mkdir(parents=True)
    (state / "secrets" / "certify" / "default.key").write_text(SECRET.hex() + "\n")
    # the exercise's catalog: its kernels get the declared dataset, as in production
    setup = GradingSetup(curriculum=COURSES, data_root=data_root, state_dir=state, catalog=CATALOG)
    started = time.monotonic()
    summary = run(
        setup,
        RunOptions(COURSE, None, submissions, root / "stress-out", workers=workers),
        progress=sys.stderr.isatty(),
    )
    seconds = time.monotonic() - started
    failed = [a for a in summary.attempts if a.total != a.max_score]
    print(
        f"stress: {count} gradings, {workers} at a time, in {seconds:.0f} s "
        f"({count / seconds:.2f}/s), isolation {summary.backend}"
    )
    print(f"stress: {len(failed)} failures (kernel start, lost connection or wrong score)")
    for attempt in failed[:10]:
        print(f"  {attempt.trainee}: {attempt.total}/{attempt.max_score}: {attempt.reason}")
    return len(failed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=40)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--stress", type=int, metavar="N", help="grade N notebooks, count failures")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="statbox-bench-grading-"))
    root.chmod(0o755)
    try:
        data_root = root / "data"
        write_sample_data(data_root)
        for path in [data_root, *data_root.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        if args.stress:
            return 1 if stress(args.stress, args.workers, root, data_root) else 0
        submissions = root / "submissions"
        submissions.mkdir()
        notebooks = make_submissions(submissions, args.submissions)
        config = write_config(root, data_root)
        work = root / "papermill"
        work.mkdir()

        # Statbox before and after the baseline, so a change in the machine's load during
        # the run weighs on both sides alike.
        started = time.monotonic()
        ours = statbox_run(config, submissions, root / "out", args.workers)
        before = time.monotonic() - started
        started = time.monotonic()
        baseline = papermill_loop(notebooks, work, data_root)
        papermill_seconds = time.monotonic() - started
        started = time.monotonic()
        again = statbox_run(config, submissions, root / "out-again", args.workers)
        after = time.monotonic() - started
        statbox_seconds = (before + after) / 2

        n = len(notebooks)
        print(f"{n} submissions of {COURSE}/exercise, same machine, same run")
        print(
            f"  papermill CLI loop (fresh kernel each): {papermill_seconds:6.1f} s  "
            f"{n / papermill_seconds:5.2f} notebooks/s  {papermill_seconds / n:.2f} s each"
        )
        print(
            f"  statbox certify run --workers {args.workers}:      {statbox_seconds:6.1f} s  "
            f"{n / statbox_seconds:5.2f} notebooks/s  (mean of {before:.1f} s before the "
            f"loop and {after:.1f} s after it)"
        )
        print(f"  ratio: {papermill_seconds / statbox_seconds:.1f}x the papermill loop")
        same = baseline == ours == again
        print(
            f"  same scores: {'yes' if same else 'NO'} "
            f"({sum(1 for t in ours if ours[t] == 10)} full marks, "
            f"{sum(1 for t in ours if ours[t] == 0)} zero)"
        )
        if not same:
            diff = {
                t: (baseline.get(t), ours.get(t))
                for t in notebooks
                if baseline.get(t) != ours.get(t)
            }
            print(f"  differences (papermill, statbox): {diff}")
        return 0 if same else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
