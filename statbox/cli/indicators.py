"""``statbox indicator``: list, show, run, backfill, promote and download the fast indicators
(``paths.indicators``).

A thin layer over :class:`statbox.indicators.library.Indicators`, the library the scheduler
and the indicator pages call: it acts as the operator on the host (an admin), or with ``--as
USER`` as that user would through the pages, calls one method and prints. A bad
``indicator.yaml`` is reported one line per problem (file:line: key: message), exit 2, before
anything runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from statbox.cli.common import CommandGroup, load
from statbox.cli.common import acting as _acting
from statbox.cli.common import table as _table
from statbox.errors import BadInput, ExitCode

EPILOG = (
    "exit codes: 0 success; 1 a run failed (after its retries; nothing was published for it); "
    "2 bad input (invalid indicator files or arguments, no such indicator, not allowed; "
    "nothing was run); 3 this machine lacks something (see `statbox doctor`); 130 interrupted."
)


def _library(args: argparse.Namespace) -> Any:
    from statbox.indicators.library import Indicators

    return Indicators.from_settings(load(args))


def _run_line(record: Any) -> str:
    published = f"vintage {record.vintage}" if record.vintage else "nothing published"
    tries = f"{record.attempts} attempt{'s' if record.attempts != 1 else ''}"
    line = f"{record.indicator} {record.period}: {record.outcome} in {record.seconds:.1f} s"
    line += f" ({tries}; {published})"
    return line + (f": {record.error}" if record.error else "")


def cmd_list(args: argparse.Namespace) -> int:
    library = _library(args)
    views = library.list(_acting(args))
    if not views:
        print(f"no indicators in {library.root}")
        return ExitCode.OK
    rows = [["ID", "STAGE", "FREQUENCY", "OWNER", "LATEST", "TITLE"]]
    for view in views:
        runs = [r for r in library.runs(_acting(args), view.id) if r.outcome == "succeeded"]
        latest = f"{runs[0].period} (v{runs[0].vintage})" if runs else "-"
        spec = view.spec
        rows.append([view.id, view.stage, spec.period.frequency, spec.owner, latest, spec.title])
    print(_table(rows))
    return ExitCode.OK


def cmd_show(args: argparse.Namespace) -> int:
    library = _library(args)
    actor = _acting(args)
    view = library.get(actor, args.indicator)
    spec = view.spec
    schedule = f"{spec.schedule.cron} ({spec.schedule.timezone})" if spec.schedule else "none"
    print(f"{view.id}: {spec.title}")
    print(f"  stage: {view.stage}   owner: {spec.owner}   frequency: {spec.period.frequency}")
    print(f"  schedule: {schedule}   sources: {', '.join(spec.sources) or 'none'}")
    print(f"  series: {', '.join(spec.series.columns)}")
    if spec.description:
        print(f"\n{spec.description.strip()}")
    if spec.method:
        print(f"\nMethod:\n{spec.method.rstrip()}")
    runs = library.runs(actor, view.id)
    print(f"\nRuns ({len(runs)}, newest first):" if runs else "\nRuns: none yet")
    for record in runs[: args.runs]:
        print(f"  {record.started_at} {record.trigger:8} {_run_line(record)}")
    revisions = library.revisions(actor, view.id)
    if revisions:
        print(f"\nRevisions ({len(revisions)}):")
        for revision in revisions[-args.runs :]:
            key = ".".join(revision.key.values())
            print(
                f"  {key}: {revision.old} -> {revision.new} "
                f"(vintage {revision.from_vintage} -> {revision.to_vintage})"
            )
    for change in view.stage_history:
        print(f"  stage {change['stage']} by {change['by']} at {change['at']}")
    return ExitCode.OK


def cmd_run(args: argparse.Namespace) -> int:
    library = _library(args)
    try:
        record = library.run(_acting(args), args.indicator, args.period)
    finally:
        library.close()
    print(_run_line(record))
    return ExitCode.OK if record.outcome == "succeeded" else ExitCode.FAILED


def cmd_backfill(args: argparse.Namespace) -> int:
    library = _library(args)
    actor = _acting(args)
    first, last = args.first, args.last
    if first is None or last is None:
        sample = library.get(actor, args.indicator).spec.period.backfill
        if sample is None:
            raise BadInput(f"{args.indicator} declares no backfill range: give --first and --last")
        first, last = first or sample.first, last or sample.last
    workers = args.workers or library.settings.indicators.workers
    try:
        records = library.backfill(actor, args.indicator, first, last, workers=workers)
    finally:
        library.close()
    for record in records:
        print(_run_line(record))
    failed = sum(r.outcome != "succeeded" for r in records)
    print(f"{len(records) - failed} of {len(records)} periods published")
    return ExitCode.FAILED if failed else ExitCode.OK


def cmd_promote(args: argparse.Namespace) -> int:
    library = _library(args)
    stage = library.promote(_acting(args), args.indicator, args.stage)
    print(f"{args.indicator} is now {stage}")
    return ExitCode.OK


def cmd_download(args: argparse.Namespace) -> int:
    library = _library(args)
    data = library.download(_acting(args), args.indicator, args.format)
    if args.out:
        with open(args.out, "wb") as handle:
            handle.write(data)
    else:
        sys.stdout.buffer.write(data)
    return ExitCode.OK


def register(commands: Any) -> None:
    """Add ``statbox indicator ...`` to the top-level subparsers."""
    group = CommandGroup(
        commands,
        "indicator",
        "Fast indicators: list, show, run, backfill, promote, download.",
        description=__doc__,
        epilog=EPILOG,
    )

    def with_as(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument(
            "--as",
            dest="as_user",
            metavar="USER",
            help="act as this user, as the indicator pages would for them (default: the "
            "operator, an admin)",
        )
        return parser

    with_as(group.add("list", cmd_list, "List the indicators (paths.indicators) and their stage."))
    show = with_as(group.add("show", cmd_show, "Show an indicator: definition, runs, revisions."))
    show.add_argument("indicator", metavar="ID")
    show.add_argument("--runs", type=int, default=10, metavar="N", help="runs shown (default 10)")

    run = with_as(group.add("run", cmd_run, "Run one period now, in the grading sandbox."))
    run.add_argument("indicator", metavar="ID")
    run.add_argument(
        "--period",
        metavar="P",
        help="2024-W10 (weekly) or 2024-03 (monthly); default: the latest complete period",
    )

    backfill = with_as(
        group.add("backfill", cmd_backfill, "Run every period of a range, several at once.")
    )
    backfill.add_argument("indicator", metavar="ID")
    backfill.add_argument("--first", metavar="P", help="default: the indicator's backfill.first")
    backfill.add_argument("--last", metavar="P", help="default: the indicator's backfill.last")
    backfill.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="periods run at once, one sandboxed kernel each (default: indicators.workers)",
    )

    promote = with_as(
        group.add("promote", cmd_promote, "Set an indicator's stage (admins and promoters).")
    )
    promote.add_argument("indicator", metavar="ID")
    promote.add_argument("stage", choices=["poc", "pilot", "production"])

    download = with_as(
        group.add("download", cmd_download, "Write the latest observations (stdout or --out).")
    )
    download.add_argument("indicator", metavar="ID")
    download.add_argument("--format", choices=["csv", "sdmx-csv", "sdmx-json"], default="csv")
    download.add_argument("--out", metavar="FILE", help="write here instead of stdout")
