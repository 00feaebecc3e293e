"""The results store: one row per attempt, in SQLAlchemy (sqlite by default, PostgreSQL URL in
production).

An attempt is identified by what decides its outcome: (cohort, course, exercise, trainee,
submission hash, grader version). Grading the same submission again with the same grader
updates that row instead of adding one, so regrading is idempotent; a new submission or a
changed grader is a new attempt. A trainee's result is their latest attempt.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    select,
)
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from statbox.errors import BadInput, EnvironmentProblem

if TYPE_CHECKING:  # annotations only: the pipeline pulls nbformat and papermill (over 1 s)
    from statbox.certify.pipeline import Attempt


class Base(DeclarativeBase):
    pass


class AttemptRow(Base):
    __tablename__ = "certify_attempts"
    __table_args__ = (
        UniqueConstraint(
            "cohort",
            "course",
            "exercise",
            "trainee",
            "submission_hash",
            "grader_version",
            name="certify_attempt_identity",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cohort: Mapped[str] = mapped_column(String(64), index=True)
    trainee: Mapped[str] = mapped_column(String(64), index=True)
    course: Mapped[str] = mapped_column(String(64), index=True)
    exercise: Mapped[str] = mapped_column(String(128))
    variant: Mapped[dict[str, Any]] = mapped_column(JSON)
    scores: Mapped[dict[str, float]] = mapped_column(JSON)
    feedback: Mapped[dict[str, str]] = mapped_column(JSON)
    total: Mapped[float] = mapped_column(Float)
    max_score: Mapped[int] = mapped_column(Integer)
    passed: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text, default="")
    grader_error: Mapped[bool] = mapped_column(Boolean, default=False)
    submission_hash: Mapped[str] = mapped_column(String(64))
    grader_version: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    gradings: Mapped[int] = mapped_column(Integer, default=1)
    """How many times this same submission was graded by this grader."""


@dataclass(frozen=True)
class StoredAttempt:
    """An attempt as read back from the store."""

    id: int
    cohort: str
    trainee: str
    course: str
    exercise: str
    variant: dict[str, Any]
    scores: dict[str, float]
    feedback: dict[str, str]
    total: float
    max_score: int
    passed: bool
    reason: str
    grader_error: bool
    submission_hash: str
    grader_version: str
    started_at: datetime
    finished_at: datetime
    gradings: int

    @property
    def percent(self) -> float:
        return 100.0 * self.total / self.max_score if self.max_score else 0.0


def shown_url(url: str) -> str:
    """``url`` with its password masked, for messages and records."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(invalid URL)"


def default_url(state_dir: Path) -> str:
    return f"sqlite:///{state_dir / 'certify' / 'results.sqlite'}"


def results_url(database: str | None, state_dir: Path, base: Path | None = None) -> str:
    """The results store's URL from ``certify.database``: the default in ``state_dir`` when
    unset; a relative SQLite file resolved against ``base`` (the settings file's directory),
    as every relative path of the settings is, so that every command finds the same file."""
    if not database:
        return default_url(state_dir)
    file = sqlite_file(database)
    if file is None or file.is_absolute():
        return database
    from sqlalchemy.engine import make_url

    resolved = ((base or Path.cwd()) / file).resolve()
    return make_url(database).set(database=str(resolved)).render_as_string(hide_password=False)


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite results store, or None (another database, or in memory)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    if str(parsed.database).startswith("file:"):  # a URI filename (?uri=true): not a plain path
        return None
    return Path(str(parsed.database))


class ResultsStore:
    """Attempts in a database; safe to use from the grader's threads."""

    def __init__(self, url: str):
        self.url = url
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine = create_engine(url, future=True)
            Base.metadata.create_all(self.engine)
        except (ArgumentError, NoSuchModuleError) as exc:
            raise BadInput(f"results store {self._shown()}: {str(exc).splitlines()[0]}") from None
        except SQLAlchemyError as exc:
            raise EnvironmentProblem(
                f"results store {self._shown()}: {exc.__class__.__name__}: "
                f"{str(exc).splitlines()[0]}"
            ) from None
        except Exception as exc:  # an unknown dialect or a missing driver
            raise BadInput(f"results store {self._shown()}: {exc}") from None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._lock = threading.Lock()

    def _shown(self) -> str:
        return shown_url(self.url)

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with self._lock, self._sessions() as session, session.begin():
            yield session

    def record(self, attempt: Attempt) -> int:
        """Store ``attempt``; the same submission graded by the same grader updates its row."""
        now = datetime.now(UTC)
        values = dict(
            exercise=attempt.exercise,
            variant=attempt.variant,
            scores=attempt.scores,
            feedback={task.id: task.feedback for task in attempt.tasks},
            total=attempt.total,
            max_score=attempt.max_score,
            passed=attempt.passed,
            reason=attempt.reason,
            grader_error=attempt.grader_error,
            started_at=attempt.started_at,
            finished_at=attempt.finished_at,
            recorded_at=now,
        )
        with self._session() as session:
            row = session.scalars(
                select(AttemptRow).where(
                    AttemptRow.cohort == attempt.cohort,
                    AttemptRow.course == attempt.course,
                    AttemptRow.exercise == attempt.exercise,
                    AttemptRow.trainee == attempt.trainee,
                    AttemptRow.submission_hash == attempt.submission_hash,
                    AttemptRow.grader_version == attempt.grader_version,
                )
            ).first()
            if row is None:
                row = AttemptRow(
                    cohort=attempt.cohort,
                    course=attempt.course,
                    trainee=attempt.trainee,
                    submission_hash=attempt.submission_hash,
                    grader_version=attempt.grader_version,
                    gradings=1,
                    **values,
                )
                session.add(row)
            else:
                for key, value in values.items():
                    setattr(row, key, value)
                row.gradings += 1
            session.flush()
            return row.id

    def attempts(
        self, cohort: str | None = None, course: str | None = None, trainee: str | None = None
    ) -> list[StoredAttempt]:
        """Every attempt matching the filters, oldest first."""
        query = select(AttemptRow).order_by(AttemptRow.finished_at, AttemptRow.id)
        if cohort is not None:
            query = query.where(AttemptRow.cohort == cohort)
        if course is not None:
            query = query.where(AttemptRow.course == course)
        if trainee is not None:
            query = query.where(AttemptRow.trainee == trainee)
        with self._session() as session:
            return [_stored(row) for row in session.scalars(query)]

    def latest(self, cohort: str, course: str) -> list[StoredAttempt]:
        """Each trainee's latest attempt at the course in the cohort, by trainee name."""
        latest: dict[str, StoredAttempt] = {}
        for attempt in self.attempts(cohort, course):
            latest[attempt.trainee] = attempt
        return [latest[name] for name in sorted(latest)]

    def close(self) -> None:
        self.engine.dispose()


def _stored(row: AttemptRow) -> StoredAttempt:
    values = {f.name: getattr(row, f.name) for f in fields(StoredAttempt)}
    for key in ("started_at", "finished_at"):  # sqlite gives the times back without a zone
        if values[key].tzinfo is None:
            values[key] = values[key].replace(tzinfo=UTC)
    return StoredAttempt(**values)
