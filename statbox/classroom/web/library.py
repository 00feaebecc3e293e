"""What the classroom service asks of the classroom library, per request, for one person.

The pages and the JSON API call only :class:`Classroom`; every method takes the acting
:class:`Person` and refuses what they may not do with :class:`Refused` (shown as 403) or
:class:`NotFound` (404: a trainee asking for another's submission learns nothing, not even
that it exists). The service never decides a right itself.

:class:`InterimClassroom` is built from what ``main`` has today (``statbox.courses.publish``,
``statbox.certify.certificates``); the ``classroom`` branch's library
(``statbox.classroom.*``) replaces it, method for method. Until then submitting and grading
answer :class:`NotYet`.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives import serialization

from statbox.certify.certificates import Keys, Verdict, key_id, revoke, verify
from statbox.courses.model import LoadedCourse, load_curriculum
from statbox.courses.publish import publish_course
from statbox.identity.roles import resolve_role
from statbox.settings.model import Settings
from statbox.settings.names import LEARNS_GROUP_PREFIX, TEACHES_GROUP_PREFIX

CERTIFICATE_ID = re.compile(r"^[0-9a-f]{24}$")
"""Certificate ids are 24 hex digits (statbox.certify.certificates.certificate_id)."""


class Refused(Exception):
    """The person may not do this (403)."""


class NotFound(Exception):
    """No such thing, or nothing the person may know of (404)."""


class NotYet(Exception):
    """The classroom library does not do this yet (501)."""


@dataclass(frozen=True)
class Person:
    """Who is asking, as the hub knows them: name, role and cohorts.

    Cohorts come from the hub's groups ``statbox-teaches-<cohort>`` and
    ``statbox-learns-<cohort>``, which Statbox alone writes at sign-in
    (:func:`statbox.identity.roles.groups_for`): an identity provider cannot name them.
    """

    name: str
    role: str
    teaches: frozenset[str] = frozenset()
    learns: frozenset[str] = frozenset()

    @classmethod
    def from_hub(cls, settings: Settings, model: dict[str, Any]) -> Person:
        """From the hub's user model (identify scopes give ``name`` and ``groups``)."""
        groups = [str(g) for g in model.get("groups") or []]
        name = str(model["name"])

        def cohorts(prefix: str) -> frozenset[str]:
            found = {g[len(prefix) :] for g in groups if g.startswith(prefix)}
            return frozenset(found.intersection(settings.cohorts))

        return cls(
            name=name,
            role=resolve_role(settings, name, groups).role,
            teaches=cohorts(TEACHES_GROUP_PREFIX),
            learns=cohorts(LEARNS_GROUP_PREFIX),
        )


@dataclass(frozen=True)
class Publication:
    cohort: str
    course: str
    title: str
    deadline: str | None
    by: str
    at: str


@dataclass(frozen=True)
class CohortView:
    """What an instructor sees of a cohort they teach."""

    name: str
    trainees: list[str]
    publications: list[Publication]
    opened: dict[str, list[str]] = field(default_factory=dict)
    """Course id -> trainees who have it in their home."""


class Classroom(Protocol):
    """The classroom library's functions the service calls (see the module docstring)."""

    def courses_for(self, person: Person) -> list[Publication]: ...

    def courses_to_publish(self, person: Person) -> list[LoadedCourse]: ...

    def cohort(self, person: Person, cohort: str) -> CohortView: ...

    def publish(
        self, person: Person, cohort: str, course: str, deadline: datetime | None
    ) -> Publication: ...

    def submit(self, person: Person, course: str) -> dict[str, Any]: ...

    def submissions(self, person: Person, cohort: str, trainee: str) -> list[dict[str, Any]]: ...

    def grade(self, person: Person, cohort: str, course: str) -> dict[str, Any]: ...

    def revoke(self, person: Person, certificate: str, reason: str) -> dict[str, str]: ...

    def verify(self, content: bytes) -> Verdict: ...

    def certificate(self, certificate: str) -> bytes | None: ...

    def public_keys(self) -> dict[str, Any]: ...

    def revocations(self) -> dict[str, Any]: ...


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


class InterimClassroom:
    """The :class:`Classroom` on ``main``'s modules, until the classroom library lands.

    Publications are kept in ``<state>/classroom/publications.json`` (the service's own, out
    of every trainee's reach); issued certificates are read from
    ``<state>/certify/issued/<id>.json``.
    """

    def __init__(self, settings: Settings, state_dir: Path, curriculum: Path):
        self.settings = settings
        self.state_dir = state_dir
        self.curriculum = curriculum
        self.keys = Keys(state_dir)
        self._record = state_dir / "classroom" / "publications.json"
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ reading
    def _courses(self) -> dict[str, LoadedCourse]:
        return load_curriculum(self.curriculum)

    def _publications(self) -> list[Publication]:
        try:
            data = json.loads(self._record.read_text())
        except FileNotFoundError:
            return []
        return [Publication(**entry) for entry in data["publications"]]

    def _members(self, cohort: str) -> list[str]:
        return sorted(self.settings.groups.get(cohort, []))

    def _trainees(self, cohort: str) -> list[str]:
        members = self._members(cohort)
        return [m for m in members if resolve_role(self.settings, m, [cohort]).role == "trainee"]

    def _teaching(self, person: Person, cohort: str) -> None:
        if cohort not in person.teaches:
            # The same answer for a cohort that exists and one that does not.
            raise NotFound(f"no cohort {cohort!r} among those you teach")

    def courses_for(self, person: Person) -> list[Publication]:
        """Courses published to the person's cohorts whose audience holds their role."""
        courses = self._courses()
        return [
            p
            for p in self._publications()
            if p.cohort in person.learns
            and p.course in courses
            and person.role in courses[p.course].course.audience
        ]

    def courses_to_publish(self, person: Person) -> list[LoadedCourse]:
        if not person.teaches:
            raise Refused("only an instructor of a cohort publishes courses")
        return sorted(self._courses().values(), key=lambda c: c.id)

    def cohort(self, person: Person, cohort: str) -> CohortView:
        self._teaching(person, cohort)
        trainees = self._trainees(cohort)
        publications = [p for p in self._publications() if p.cohort == cohort]
        homes = self.state_dir / "homes"
        opened = {
            p.course: [t for t in trainees if (homes / t / "courses" / p.course).is_dir()]
            for p in publications
        }
        return CohortView(cohort, trainees, publications, opened)

    # ------------------------------------------------------------------ acting
    def publish(
        self, person: Person, cohort: str, course: str, deadline: datetime | None
    ) -> Publication:
        self._teaching(person, cohort)
        courses = self._courses()
        if course not in courses:
            raise NotFound(f"no course {course!r} in the curriculum")
        loaded = courses[course]
        trainees = [
            t
            for t in self._trainees(cohort)
            if resolve_role(self.settings, t, [cohort]).role in loaded.course.audience
        ]
        publish_course(loaded, trainees, self.state_dir)
        publication = Publication(
            cohort=cohort,
            course=course,
            title=loaded.course.title,
            deadline=deadline.astimezone(UTC).isoformat() if deadline else None,
            by=person.name,
            at=_now(),
        )
        with self._lock:
            kept = [p for p in self._publications() if (p.cohort, p.course) != (cohort, course)]
            self._write([*kept, publication])
        return publication

    def _write(self, publications: Iterable[Publication]) -> None:
        self._record.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = self._record.with_suffix(".tmp")
        entries = [p.__dict__ for p in publications]
        temporary.write_text(json.dumps({"publications": entries}, indent=1))
        os.replace(temporary, self._record)

    def submit(self, person: Person, course: str) -> dict[str, Any]:
        raise NotYet("submitting arrives with the classroom library (statbox.classroom)")

    def submissions(self, person: Person, cohort: str, trainee: str) -> list[dict[str, Any]]:
        if trainee != person.name:
            self._teaching(person, cohort)
        elif cohort not in person.learns and cohort not in person.teaches:
            raise NotFound(f"no cohort {cohort!r} of yours")
        raise NotYet("submissions arrive with the classroom library (statbox.classroom)")

    def grade(self, person: Person, cohort: str, course: str) -> dict[str, Any]:
        self._teaching(person, cohort)
        raise NotYet("grading from the page arrives with the classroom library")

    def _issued(self, certificate: str) -> dict[str, Any] | None:
        content = self.certificate(certificate)
        if content is None:
            return None
        record = json.loads(content)["record"]
        return record if isinstance(record, dict) else None

    def revoke(self, person: Person, certificate: str, reason: str) -> dict[str, str]:
        record = self._issued(certificate) if CERTIFICATE_ID.match(certificate) else None
        if record is None or record.get("cohort") not in person.teaches:
            raise NotFound(f"no certificate {certificate[:32]!r} of a cohort you teach")
        if not reason.strip():
            raise Refused("say why the certificate is revoked (reason)")
        return revoke(self.keys, certificate, reason.strip()[:500])

    # ------------------------------------------------------------------ public
    def verify(self, content: bytes) -> Verdict:
        return verify(content, self.keys)

    def certificate(self, certificate: str) -> bytes | None:
        """The signed file of a certificate this hub issued, by id; None when unknown."""
        if not CERTIFICATE_ID.match(certificate):
            return None
        try:
            return (self.state_dir / "certify" / "issued" / f"{certificate}.json").read_bytes()
        except FileNotFoundError:
            return None

    def public_keys(self) -> dict[str, Any]:
        """This hub's public signing key as a JSON Web Key Set (RFC 8037: Ed25519 is
        ``OKP``); the key is made on first use, so the set is never empty."""
        own = self.keys.signing_key(create=True)
        assert own is not None
        public = own.public_key()
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": key_id(public), "use": "sig"}
        return {"keys": [jwk]}

    def revocations(self) -> dict[str, Any]:
        return {"revoked": list(self.keys.revoked().values())}
