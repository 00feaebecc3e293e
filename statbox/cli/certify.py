"""``statbox certify``: grade, collect, run, report, verify, revoke (a thin layer over the
library: :mod:`statbox.classroom` for the cohort's steps, :mod:`statbox.certify` below it).

The contract operators script (keep these names)::

    statbox certify grade --course C --cohort K [--trainee USER] [--workers N]
    statbox certify collect --course C --cohort K --out DIR
    statbox certify run --course C --exercise E --submissions DIR --out DIR
                        [--workers N | --dask] [--cohort NAME]
    statbox certify report --out DIR
    statbox certify verify FILE [--json]
    statbox certify revoke ID|FILE --reason TEXT
    statbox certify lift ID
    statbox certify keys --out DIR

``grade`` is the classroom's path: the submitted snapshots of the cohort's trainees, graded
with the variant each was published. ``run`` grades any folder of ``<trainee>.ipynb``.

``run`` exits 0 when the run completed, even if trainees failed; 2 on bad input (nothing is
graded or written); 1 when the grader itself failed on some submission (a reference that
raised): those are listed. ``verify`` exits 0 for a valid certificate and 1 for any other
verdict (tampered, revoked, unknown issuer, not a certificate), 2 when the file cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from statbox.cli.common import EPILOG, load
from statbox.errors import BadInput, ExitCode

HELP = "Certification: grade a cohort, report, issue and verify certificates."


def _settings(args: argparse.Namespace) -> Any:

    return load(args)


def results_store(loaded: Any) -> str:
    """The URL of the results store the settings name (``certify.database``)."""
    from statbox.classroom.setup import results_store as store

    return store(loaded)


def grading_setup(loaded: Any) -> Any:
    """The runner's view of the settings (paths, store, isolation and limits)."""
    from statbox.classroom.setup import grading_setup as setup

    return setup(loaded)


def collected_cohort(submissions: Path, given: str | None) -> str:
    """The cohort to grade with: the one ``certify collect`` recorded for the folder (each
    trainee's variant is that cohort's), which ``--cohort`` may repeat but not contradict;
    else ``--cohort``, else "default"."""
    import json

    from statbox.classroom.service import COLLECTED_MARK

    try:
        recorded = json.loads((submissions / COLLECTED_MARK).read_text()).get("cohort")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if recorded and given and given != recorded:
        raise BadInput(
            f"--cohort {given}: {submissions} holds the submissions of cohort {recorded} "
            f"(statbox certify collect): their variants are {recorded}'s; drop --cohort"
        )
    return str(recorded or given or "default")


def cmd_run(args: argparse.Namespace) -> int:
    from statbox.certify.runner import RunOptions, run
    from statbox.spawners.singleuser import defer_slow_imports

    defer_slow_imports()  # nbformat's validation would build jsonschema's IRI parsers: 1 s
    setup = grading_setup(_settings(args))
    args.cohort = collected_cohort(Path(args.submissions), args.cohort)
    options = RunOptions(
        course=args.course,
        exercise=args.exercise,
        submissions=Path(args.submissions),
        out=Path(args.out),
        workers=args.workers,
        dask=args.dask,
        cohort=args.cohort,
    )
    summary = run(setup, options, progress=not args.quiet)
    if summary.backend.startswith("rlimits") or "not root" in summary.backend:
        print(f"statbox: warning: isolation is {summary.backend}", file=sys.stderr)
    for line in summary.notes:
        print(f"statbox: warning: {line}", file=sys.stderr)
    passed = len(summary.attempts) - len(summary.failed)
    first = summary.attempts[0]
    print(
        f"Graded {len(summary.attempts)} submissions of {first.course}/{first.exercise} "
        f"(cohort {options.cohort}) in {summary.seconds:.1f} s, isolation: {summary.backend}.\n"
        f"  {passed} passed, {len(summary.failed)} did not.\n"
        f"  Results: {summary.out / 'results.csv'}; graded notebooks: {summary.out / 'graded'}/\n"
        f"  Next: statbox certify report --out {summary.out}"
    )
    if summary.grader_errors:
        for attempt in summary.grader_errors:
            print(f"statbox: {attempt.trainee}: {attempt.reason}", file=sys.stderr)
        return ExitCode.FAILED
    return ExitCode.OK


def cmd_collect(args: argparse.Namespace) -> int:
    from statbox.classroom import Actor
    from statbox.classroom.setup import classroom_from_settings

    room = classroom_from_settings(_settings(args))
    out = Path(args.out)
    result = room.collect(Actor.operator(), args.cohort, args.course, out)
    for line in result.tampered:
        print(f"statbox: not taken: {line}", file=sys.stderr)
    late = [user for user, record in result.taken.items() if record.late]
    print(
        f"Collected the submissions of {len(result.taken)} trainees of {args.cohort} "
        f"({args.course}) into {out}; {len(result.missing)} submitted nothing"
        + (f" ({', '.join(result.missing)})" if result.missing else "")
        + (f"; late: {', '.join(late)}" if late else "")
        + "."
    )
    return ExitCode.FAILED if result.tampered else ExitCode.OK


def cmd_grade(args: argparse.Namespace) -> int:
    from statbox.classroom import Actor
    from statbox.classroom.setup import classroom_from_settings
    from statbox.spawners.singleuser import defer_slow_imports

    defer_slow_imports()
    room = classroom_from_settings(_settings(args))
    status = room.start_grading(
        Actor.operator(),
        args.cohort,
        args.course,
        trainee=args.trainee,
        background=False,
        workers=args.workers,
    )
    run = room.layout.gradings(args.cohort, args.course) / status.job / "run"
    if status.state != "done":
        print(
            f"statbox: grading job {status.job} {status.state}: {status.current}", file=sys.stderr
        )
        return ExitCode.FAILED
    print(
        f"Graded {status.done} submissions of {args.course} (cohort {args.cohort}), job "
        f"{status.job}.\n  Results: {run / 'results.csv'}\n"
        f"  Next: statbox certify report --out {run}"
    )
    return ExitCode.OK


def cmd_report(args: argparse.Namespace) -> int:
    from statbox.certify.certificates import Keys
    from statbox.certify.exercise import find_course, load_exercise
    from statbox.certify.report import Issuing, read_run_record, write_report
    from statbox.certify.trust import issuer_name, public_base_url
    from statbox.classroom.state import Layout

    loaded = _settings(args)
    if args.out is None:
        if not (args.course and args.cohort):
            raise BadInput("give --out DIR (a run's folder), or --course C --cohort K")
        from statbox.classroom import Actor
        from statbox.classroom.setup import classroom_from_settings

        room = classroom_from_settings(loaded)
        job = room.latest_job(Actor.operator(), args.cohort, args.course)
        out = room.report(Actor.operator(), args.cohort, args.course, job.job)
        certificates = sorted((out / "certificates").glob("*.json"))
        print(
            f"Report of grading job {job.job} ({job.total} trainees): {out / 'report.html'}, "
            f"{out / 'report.csv'}; {len(certificates)} certificates in {out / 'certificates'}/"
        )
        return ExitCode.OK
    out = Path(args.out)
    run = read_run_record(out)
    exercise = load_exercise(find_course(loaded.paths.curriculum, run.course), run.exercise)
    hub = loaded.settings.hub
    claimed = Layout(loaded.paths.state_dir).claimed_names()
    issuing = Issuing(
        issuer_name(hub), public_base_url(hub), loaded.settings.certify.people, claimed
    )
    summary = write_report(
        out, exercise, Keys(loaded.paths.state_dir), issuing, results_store(loaded)
    )
    revoked = f", {len(summary.revoked)} revoked" if summary.revoked else ""
    print(
        f"Report of {len(summary.attempts)} trainees ({len(summary.passed)} passed{revoked}): "
        f"{out / 'report.html'}, {out / 'report.csv'}; "
        f"{len(summary.passed)} certificates in {out / 'certificates'}/"
    )
    return ExitCode.OK


def cmd_verify(args: argparse.Namespace) -> int:
    import json

    from statbox.certify.openbadges import verify_upload
    from statbox.certify.trust import hub_trust

    path = Path(args.file)
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror}") from None
    verdict = verify_upload(content, hub_trust(_settings(args), [Path(k) for k in args.key]))
    if args.json:
        print(json.dumps({"file": str(path), **verdict.as_json()}, ensure_ascii=False, indent=1))
    else:
        print(f"{path}: {verdict.message}")
    return ExitCode.OK if verdict.valid else ExitCode.FAILED


def cmd_revoke(args: argparse.Namespace) -> int:
    import json

    from statbox.certify.certificates import Keys, revoke

    certificate, record = args.certificate, None
    if certificate.endswith(".json"):
        try:
            record = json.loads(Path(certificate).read_bytes())["record"]
            certificate = record["certificate"]
        except (OSError, ValueError, KeyError, TypeError):
            raise BadInput(f"{args.certificate}: not a certificate file") from None
    if not certificate.isalnum() or len(certificate) > 64:
        raise BadInput(f"{certificate[:64]!r}: not a certificate id")
    if not args.reason.strip():
        raise BadInput("--reason: say why (it is shown to whoever verifies the certificate)")
    # with the file, the revocation also bars re-issuing to its trainee (until `lift`)
    entry = revoke(Keys(_settings(args).paths.state_dir), certificate, args.reason, record)
    barred = " It bars the trainee's course until lifted." if record else ""
    print(
        f"Revoked certificate {entry['certificate']} ({entry['reason']}).{barred}\n"
        "  Other hubs see it once they have the new revocation list: "
        "statbox certify keys --out DIR"
    )
    return ExitCode.OK


def cmd_lift(args: argparse.Namespace) -> int:
    from statbox.certify.certificates import Keys, lift

    entry = lift(Keys(_settings(args).paths.state_dir), args.certificate)
    print(
        f"Lifted the bar of revoked certificate {entry['certificate']}: its trainee may be "
        "certified again (this certificate stays revoked)."
    )
    return ExitCode.OK


def cmd_keys(args: argparse.Namespace) -> int:
    from statbox.certify.certificates import Keys
    from statbox.certify.trust import export_documents, issuer_name, public_base_url

    loaded = _settings(args)
    hub = loaded.settings.hub
    written = export_documents(
        Keys(loaded.paths.state_dir), issuer_name(hub), public_base_url(hub), Path(args.out)
    )
    print(
        f"Wrote {', '.join(str(p) for p in written)}.\n"
        "  Another hub trusts this one with, in its statbox.yaml:\n"
        f"    certify: {{trusted_issuers: [{{name: {json_string(issuer_name(hub))}, "
        f"keys_file: {written[0]}, revocations_file: {written[1]}}}]}}"
    )
    return ExitCode.OK


def json_string(text: str) -> str:
    import json

    return json.dumps(text, ensure_ascii=False)


def register(commands: Any) -> None:

    group = commands.add_parser("certify", help=HELP, description=HELP, epilog=EPILOG)
    sub = group.add_subparsers(dest="certify_command", required=True, metavar="COMMAND")

    def add(name: str, func: Any, text: str) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=text, description=text, epilog=EPILOG)
        parser.set_defaults(func=func)
        parser.add_argument("--config", metavar="FILE", help="settings file")
        return parser

    run = add("run", cmd_run, "Grade every <trainee>.ipynb of a folder, isolated and in parallel.")
    run.add_argument("--course", required=True, metavar="C")
    run.add_argument("--exercise", required=True, metavar="E", help="the exercise's name")
    run.add_argument("--submissions", required=True, metavar="DIR")
    run.add_argument("--out", required=True, metavar="DIR")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=1, metavar="N", help="kernels at a time")
    where.add_argument("--dask", action="store_true", help="run on a Dask Gateway cluster")
    run.add_argument(
        "--cohort",
        metavar="NAME",
        help="whose secret derives the variants (default: the cohort `certify collect` "
        "recorded in the folder, else default)",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bar")

    collect = add(
        "collect",
        cmd_collect,
        "Copy the submission that counts of each trainee of a cohort (the snapshots they "
        "submitted, checked against their SHA-256; never homes) into DIR/<trainee>.ipynb.",
    )
    collect.add_argument("--course", required=True, metavar="C")
    collect.add_argument("--cohort", required=True, metavar="K")
    collect.add_argument("--exercise", metavar="E", help="(ignored: a course has one exercise)")
    collect.add_argument("--out", required=True, metavar="DIR")

    grade = add(
        "grade",
        cmd_grade,
        "Grade the submissions of a cohort (or re-grade one trainee) with the variant each "
        "was published; the run lands under the state directory.",
    )
    grade.add_argument("--course", required=True, metavar="C")
    grade.add_argument("--cohort", required=True, metavar="K")
    grade.add_argument("--trainee", metavar="USER", help="re-grade this trainee only")
    grade.add_argument("--workers", type=int, default=1, metavar="N", help="kernels at a time")

    report = add("report", cmd_report, "Write the cohort report and the certificates.")
    report.add_argument("--out", metavar="DIR", help="a run's --out folder")
    report.add_argument("--course", metavar="C", help="with --cohort: the latest grading")
    report.add_argument("--cohort", metavar="K", help="with --course: the latest grading")

    verify = add(
        "verify",
        cmd_verify,
        "Say whether a certificate is valid, tampered, revoked or of an unknown issuer "
        "(exit 0 only when valid; 1 otherwise; 2 when the file cannot be read).",
    )
    verify.add_argument(
        "file", metavar="FILE", help="a certificate's .json record or its .badge.jwt credential"
    )
    verify.add_argument(
        "--key", action="append", default=[], metavar="PEM", help="also trust this public key"
    )
    verify.add_argument(
        "--json", action="store_true", help="print the verdict as JSON (status, certifies, ...)"
    )

    revoke = add("revoke", cmd_revoke, "Add a certificate to the revocation list.")
    revoke.add_argument("certificate", metavar="ID|FILE", help="a certificate id or .json file")
    revoke.add_argument(
        "--reason", required=True, help="why: shown to whoever verifies the certificate"
    )

    lifted = add(
        "lift", cmd_lift, "Let a revoked certificate's trainee be certified again for its course."
    )
    lifted.add_argument("certificate", metavar="ID", help="the revoked certificate's id")

    keys = add(
        "keys",
        cmd_keys,
        "Write this hub's public keys (keys.json, a JSON Web Key Set) and its signed "
        "revocation list (revocations.json) for other hubs to trust.",
    )
    keys.add_argument("--out", required=True, metavar="DIR", help="folder to write them into")
