"""The cohort report (HTML and CSV) and the certificates of those who passed.

``write_report(out, ...)`` reads the attempts of the run recorded in ``OUT/run.json`` (each
trainee's submission as that run graded it, by its SHA-256 and grader version: the same rows
as ``OUT/results.csv``, whatever later or other runs stored) and writes:

- ``OUT/report.html``: the score distribution (an inline SVG histogram with the pass mark),
  each task's difficulty (mean share of its points, share of full marks), who passed;
- ``OUT/report.csv``: one row per trainee with the per-task points;
- ``OUT/certificates/<trainee>.json`` (signed), ``.html``, ``.pdf`` and ``.badge.jwt`` (the
  Open Badges 3.0 credential) for each who passed and whose certificate is not revoked; a
  revoked one is listed as revoked, without links, and its files are removed.

Invariant: the report is a pure function of the store's rows (and the signing key), so
writing it again gives the same files (certificate ids and dates come from the attempt).
"""

from __future__ import annotations

import csv
import html
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from statbox.certify import openbadges
from statbox.certify.certificates import (
    Keys,
    barring,
    certificate_html,
    certificate_id,
    file_name,
    make_record,
    person_name,
    sign,
)
from statbox.certify.exercise import GradedExercise
from statbox.certify.pdf import certificate_pdf
from statbox.certify.runner import RUN_RECORD
from statbox.certify.store import ResultsStore, StoredAttempt
from statbox.certify.trust import verify_url
from statbox.errors import BadInput


@dataclass(frozen=True)
class RunRecord:
    cohort: str
    course: str
    exercise: str
    database: str
    grader_version: str | None = None
    submissions: dict[str, str] | None = None
    """trainee -> SHA-256 of what the run graded (None in a record older than this field)."""


def read_run_record(out: Path) -> RunRecord:
    path = out / RUN_RECORD
    if not path.is_file():
        raise BadInput(
            f"--out {out}: no {RUN_RECORD} here: give a folder `statbox certify run --out` wrote"
        )
    try:
        data = json.loads(path.read_text())
        submissions = data.get("submissions")
        return RunRecord(
            data["cohort"],
            data["course"],
            data["exercise"],
            data["database"],
            data.get("grader_version"),
            {str(k): str(v) for k, v in submissions.items()} if submissions else None,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise BadInput(f"{path}: not a run record ({exc})") from None


@dataclass
class ReportSummary:
    attempts: list[StoredAttempt]
    passed: list[StoredAttempt]
    """Those who passed and hold a certificate (a revoked one is not among them)."""
    files: list[Path]
    revoked: list[StoredAttempt] = field(default_factory=list)


@dataclass(frozen=True)
class Issuing:
    """What certificates say beyond the attempt: the issuer, the hub's public address (for
    the verification link, the QR code and the Open Badges issuer) and people's names."""

    issuer: str
    base_url: str
    people: Mapping[str, str] = field(default_factory=dict)
    """``certify.people``: names for those whose identity provider sends none."""
    claimed: Mapping[str, str] = field(default_factory=dict)
    """Names the identity provider sent, by username: these come first."""


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def run_attempts(out: Path, database: str | None = None) -> list[StoredAttempt]:
    """The stored attempts of the run in ``out``: per trainee the row of the submission and
    grader version that run graded, by trainee name. A record written before runs listed
    their submissions falls back to each listed trainee's latest attempt."""
    run = read_run_record(out)
    if database is None and "***" in run.database:
        raise BadInput(f"{out / RUN_RECORD}: the results store's URL has a password: give it")
    store = ResultsStore(database or run.database)
    try:
        rows = [a for a in store.attempts(run.cohort, run.course) if a.exercise == run.exercise]
    finally:
        store.close()
    chosen: dict[str, StoredAttempt] = {}
    for attempt in rows:  # oldest first: a later grading of the same submission wins
        if run.submissions is not None:
            if run.submissions.get(attempt.trainee) != attempt.submission_hash:
                continue
            if run.grader_version and attempt.grader_version != run.grader_version:
                continue
        chosen[attempt.trainee] = attempt
    return [chosen[name] for name in sorted(chosen)]


def write_report(
    out: Path,
    exercise: GradedExercise,
    keys: Keys,
    issuing: Issuing,
    database: str | None = None,
) -> ReportSummary:
    run = read_run_record(out)
    # A revoked certificate's attempt stays passed and is listed as revoked, without links
    # (statbox.certify.certificates owns what a revoked certificate shows).
    attempts = run_attempts(out, database)
    if not attempts:
        raise BadInput(f"no attempts of {run.course}/{run.exercise} in cohort {run.cohort!r} yet")
    revocations = keys.revoked()
    # A revocation bars its trainee's course/exercise/cohort too: a resubmission with one
    # byte changed (a new certificate id) is listed as revoked, not certified again.
    revoked = {}
    for attempt in attempts:
        entry = revocations.get(certificate_id(attempt)) or barring(revocations.values(), attempt)
        if attempt.passed and entry is not None:
            revoked[attempt.trainee] = str(entry["reason"])
    files = [out / "report.html", out / "report.csv"]
    _atomic_write(files[0], report_html(attempts, exercise, run, revoked).encode())
    _atomic_write(files[1], report_csv(attempts, exercise, revoked).encode())
    passed = [a for a in attempts if a.passed and a.trainee not in revoked]
    key = keys.signing_key(create=True)
    assert key is not None
    directory = out / "certificates"
    directory.mkdir(exist_ok=True)
    for attempt in attempts:
        if attempt.trainee in revoked:  # a revoked certificate is no longer handed out
            for suffix in CERTIFICATE_FILES:
                (directory / f"{attempt.trainee}{suffix}").unlink(missing_ok=True)
    for attempt in passed:
        record = make_record(
            attempt,
            exercise.loaded.course.title,
            issuing.issuer,
            person_name(
                attempt.trainee, issuing.people, {"name": issuing.claimed.get(attempt.trainee)}
            ),
            verify_url(issuing.base_url, certificate_id(attempt)),
        )
        for suffix, data in (
            (".json", sign(record, key)),
            (".html", certificate_html(record).encode()),
            (".pdf", certificate_pdf(record)),
            (".badge.jwt", openbadges.issue(record, key, issuing.base_url).encode() + b"\n"),
        ):
            path = directory / file_name(record, suffix)
            _atomic_write(path, data)
            files.append(path)
    return ReportSummary(attempts, passed, files, [a for a in attempts if a.trainee in revoked])


CERTIFICATE_FILES = (".json", ".html", ".pdf", ".badge.jwt")


def task_difficulty(
    attempts: list[StoredAttempt], exercise: GradedExercise
) -> list[dict[str, Any]]:
    """Per task: mean share of its points and share of trainees with full marks."""
    rows = []
    for task in exercise.exercise.tasks:
        points = [a.scores.get(task.id, 0.0) for a in attempts]
        rows.append(
            {
                "id": task.id,
                "title": task.title,
                "points": task.points,
                "mean": sum(points) / len(points) / task.points if points else 0.0,
                "full": sum(1 for p in points if p >= task.points) / len(points) if points else 0.0,
            }
        )
    return rows


def histogram_svg(percents: list[float], pass_mark: float) -> str:
    """Counts of trainees per 10 % band of the score, with the pass mark as a line."""
    bins = [0] * 10
    for value in percents:
        bins[min(9, int(value // 10))] += 1
    width, height, left, bottom = 520, 220, 40, 30
    tallest = max(bins) or 1
    bar = (width - left - 10) / 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'role="img" aria-label="score distribution">',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" '
        'stroke="#333"/>',
    ]
    for index, count in enumerate(bins):
        bar_height = (height - bottom - 20) * count / tallest
        x = left + index * bar
        y = height - bottom - bar_height
        parts.append(
            f'<rect x="{x + 2:.1f}" y="{y:.1f}" width="{bar - 4:.1f}" height="{bar_height:.1f}" '
            f'fill="#1f77b4"><title>{index * 10}-{index * 10 + 10}%: {count}</title></rect>'
        )
        if count:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{y - 4:.1f}" font-size="11" '
                f'text-anchor="middle">{count}</text>'
            )
        parts.append(
            f'<text x="{x + bar / 2:.1f}" y="{height - bottom + 14}" font-size="10" '
            f'text-anchor="middle">{index * 10}</text>'
        )
    mark = left + (width - left - 10) * pass_mark / 100
    parts.append(
        f'<line x1="{mark:.1f}" y1="10" x2="{mark:.1f}" y2="{height - bottom}" stroke="#d62728" '
        f'stroke-dasharray="4 3"><title>pass mark {pass_mark:g}%</title></line>'
    )
    parts.append(
        f'<text x="{width / 2}" y="{height - 2}" font-size="11" text-anchor="middle">'
        "score, % of the points</text></svg>"
    )
    return "".join(parts)


def report_html(
    attempts: list[StoredAttempt],
    exercise: GradedExercise,
    run: RunRecord,
    revoked: Mapping[str, str] | None = None,
) -> str:
    revoked = revoked or {}
    e = html.escape
    course = exercise.loaded.course
    passed = [a for a in attempts if a.passed]
    percents = [a.percent for a in attempts]
    mean = sum(percents) / len(percents)
    rows = "".join(
        f"<tr><td>{e(t['title'])}</td><td>{t['points']}</td><td>{100 * t['mean']:.0f}%</td>"
        f"<td>{100 * t['full']:.0f}%</td></tr>"
        for t in task_difficulty(attempts, exercise)
    )
    people = "".join(
        f'<tr class="{"pass" if a.passed else "fail"}"><td>{e(a.trainee)}</td>'
        f"<td>{a.total:g} / {a.max_score}</td><td>{a.percent:.0f}%</td>"
        f"<td>{e(_passed(a, revoked))}</td>"
        f"<td>{_certificate_links(a) if a.passed and a.trainee not in revoked else ''}</td>"
        f"<td>{e(a.reason)}</td></tr>"
        for a in attempts
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{e(course.title)}: cohort {e(run.cohort)}</title>
<style>
body {{ font-family: Helvetica, Arial, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
td, th {{ border: 1px solid #ccc; padding: .3rem .6rem; text-align: left; }}
tr.fail td:first-child {{ color: #a00; }} tr.pass td:first-child {{ color: #070; }}
</style></head><body>
<h1>{e(course.title)}</h1>
<p>Exercise <b>{e(run.exercise)}</b>, cohort <b>{e(run.cohort)}</b>: {len(attempts)} trainees,
{len(passed)} passed (pass mark {exercise.exercise.pass_mark:g}%), mean score {mean:.0f}%.
Grader: {e(attempts[-1].grader_version)}.</p>
<h2>Score distribution</h2>
{histogram_svg(percents, exercise.exercise.pass_mark)}
<h2>Tasks</h2>
<table><tr><th>task</th><th>points</th><th>mean share of the points</th>
<th>full marks</th></tr>{rows}</table>
<h2>Trainees</h2>
<table><tr><th>trainee</th><th>score</th><th>%</th><th>passed</th><th>certificate</th>
<th>notes</th></tr>{people}</table>
</body></html>
"""


def _passed(attempt: StoredAttempt, revoked: Mapping[str, str]) -> str:
    if not attempt.passed:
        return "no"
    reason = revoked.get(attempt.trainee)
    return "yes" if reason is None else f"certificate revoked: {reason}"


def _certificate_links(attempt: StoredAttempt) -> str:
    name = html.escape(attempt.trainee)
    return " ".join(
        f'<a href="certificates/{name}{suffix}">{suffix.lstrip(".")}</a>'
        for suffix in (".html", ".pdf", ".json", ".badge.jwt")
    )


def report_csv(
    attempts: list[StoredAttempt],
    exercise: GradedExercise,
    revoked: Mapping[str, str] | None = None,
) -> str:
    import io

    tasks = [task.id for task in exercise.exercise.tasks]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "trainee",
            *tasks,
            "score",
            "max_score",
            "percent",
            "passed",
            "reason",
            "variant",
            "submission_sha256",
            "grader_version",
            "graded_at",
        ]
    )
    for a in attempts:
        writer.writerow(
            [
                a.trainee,
                *(f"{a.scores.get(t, 0.0):g}" for t in tasks),
                f"{a.total:g}",
                a.max_score,
                f"{a.percent:.1f}",
                _passed(a, revoked or {}),
                a.reason,
                json.dumps(a.variant, sort_keys=True),
                a.submission_hash,
                a.grader_version,
                a.finished_at.isoformat(),
            ]
        )
    return buffer.getvalue()
