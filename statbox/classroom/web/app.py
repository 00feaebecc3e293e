"""The classroom service's pages and JSON API, under ``/services/classroom/``.

Two kinds of handler:

* Public, no login, no cookie read (:class:`PublicHandler`): the verification page
  (``verify``, ``verify/<id>``), the hub's public keys (``keys.json``) and revocation list
  (``revocations.json``). They change nothing and use no credential, so they need no XSRF
  token; an upload is bounded (:data:`MAX_CERTIFICATE_BYTES`).
* Everything else (:class:`PersonHandler`): the person is identified by the hub
  (:class:`~jupyterhub.services.auth.HubOAuthenticated`: the service's OAuth cookie, or
  ``Authorization: token ...`` for the API); a browser without a session is sent to log
  in. A form POST carries the hub's XSRF token (JupyterHub's own check, which HubOAuth
  applies); without it the cookie is not accepted and the POST is refused. Rights are
  decided by the library (:mod:`statbox.classroom.web.library`), never here.

Pages are server-rendered (Jinja2, CSS inline, no script needed, nothing fetched from
elsewhere); every action is a plain form POST answered by a redirect (303) to a page.
The API under ``api/`` answers JSON with the same checks.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from importlib import resources
from typing import Any
from urllib.parse import quote

import jinja2
from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from tornado import httputil, web

from statbox.certify.certificates import Verdict
from statbox.classroom.web.library import (
    Classroom,
    NotFound,
    NotYet,
    Person,
    Refused,
)
from statbox.errors import BadInput
from statbox.settings.model import Settings

MAX_CERTIFICATE_BYTES = 64 * 1024
"""A certificate file is about 1 KiB; anything above this is not one."""
MAX_UPLOAD_BYTES = MAX_CERTIFICATE_BYTES + 16 * 1024
"""What the verification form keeps of an upload: the file and the form's own framing."""
MAX_BODY_BYTES = 1024 * 1024
"""What the server reads of any other request body (the HTTP server's own limit)."""
MAX_DRAINED_BYTES = 256 * 1024 * 1024
"""What the verification form reads (and drops) before cutting an upload off."""
TOO_LARGE = f"that file is larger than a certificate ({MAX_CERTIFICATE_BYTES} bytes at most)"

ERRORS: dict[type[Exception], int] = {
    BadInput: 400,
    Refused: 403,
    NotFound: 404,
    NotYet: 501,
}
"""Library errors and the status each is answered with."""

STATUS_WORDS = {400: "Bad request", 403: "Forbidden", 404: "Not found", 501: "Not yet"}


@dataclass(frozen=True)
class ServiceConfig:
    """What the handlers share: the prefix (slashes at both ends), settings, library."""

    prefix: str
    settings: Settings
    classroom: Classroom
    templates: jinja2.Environment


def template_environment() -> jinja2.Environment:
    """Templates from the package (``statbox/classroom/web/templates``), escaped."""
    folder = resources.files("statbox.classroom.web") / "templates"
    loader = jinja2.DictLoader(
        {item.name: item.read_text() for item in folder.iterdir() if item.name.endswith(".html")}
    )
    return jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)


VERDICT_WORDS = (
    ("invalid: tampered", "tampered"),
    ("invalid: revoked", "revoked"),
    ("invalid: signed by an unknown key", "unknown issuer"),
    ("invalid: not a", "not a certificate"),
)
"""Beginnings of :func:`statbox.certify.certificates.verify`'s messages, and the word shown."""


def _verdict_view(verdict: Verdict) -> dict[str, Any]:
    """The verdict as the page and the API show it: one word, a sentence, the record."""
    word = "valid" if verdict.valid else "invalid"
    for beginning, shown in VERDICT_WORDS:
        if not verdict.valid and verdict.message.startswith(beginning):
            word = shown
            break
    return {
        "status": word,
        "valid": verdict.valid,
        "message": verdict.message,
        "record": verdict.record,
    }


def _verdict_status(verdict: dict[str, Any]) -> int:
    """A file that is no certificate at all is the uploader's mistake (400); a tampered,
    revoked or unknown one is an answer about a certificate (200)."""
    return 400 if verdict["status"] == "not a certificate" else 200


class BaseHandler(web.RequestHandler):
    config: ServiceConfig

    def initialize(self, config: ServiceConfig) -> None:
        self.config = config

    @property
    def is_api(self) -> bool:
        return self.request.path.startswith(f"{self.config.prefix}api/")

    def set_default_headers(self) -> None:
        # Nothing of ours is framed elsewhere, nor loads anything from elsewhere.
        self.set_header(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
            "frame-ancestors 'none'",
        )
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "same-origin")

    def render_page(self, name: str, status: int = 200, **values: Any) -> None:
        template = self.config.templates.get_template(name)
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(template.render(prefix=self.config.prefix, **values))

    def answer_json(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(value, default=str))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """One sentence, never a traceback, as JSON for the API and a page otherwise."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(exc, "log_message", None) if isinstance(exc, web.HTTPError) else None
        message = message or STATUS_WORDS.get(status_code, self._reason)
        if self.is_api:
            self.finish(json.dumps({"status": status_code, "message": message}))
            return
        template = self.config.templates.get_template("error.html")
        self.finish(template.render(prefix=self.config.prefix, status=status_code, message=message))

    async def guarded(self, action: Callable[[], Awaitable[None] | None]) -> None:
        """Run ``action``, answering the library's refusals with their status."""
        try:
            result = action()
            if result is not None:
                await result
        except tuple(ERRORS) as exc:
            status = next(code for kind, code in ERRORS.items() if isinstance(exc, kind))
            raise web.HTTPError(status, str(exc)[:300]) from None


class PublicHandler(BaseHandler):
    """Verification, keys and revocations: anyone, no login. They change nothing and read
    no credential, so no XSRF token is asked for."""


@web.stream_request_body
class VerifyPage(PublicHandler):
    """The upload form. The body is streamed: the first :data:`MAX_UPLOAD_BYTES` are kept,
    the rest read and dropped, so that a huge file gets a page saying so (a connection cut
    mid-upload would reach the browser as the proxy's 503) and memory stays bounded."""

    kept: list[bytes]
    size: int

    def prepare(self) -> None:
        self.kept, self.size = [], 0
        if self.request.method == "POST":
            self.request.connection.set_max_body_size(MAX_DRAINED_BYTES)  # type: ignore[union-attr]

    def data_received(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size <= MAX_UPLOAD_BYTES:
            self.kept.append(chunk)

    def get(self) -> None:
        self.render_page("verify.html", verdict=None)

    def post(self) -> None:
        if self.size > MAX_UPLOAD_BYTES:
            raise web.HTTPError(400, TOO_LARGE)
        arguments: dict[str, list[bytes]] = {}
        files: dict[str, list[httputil.HTTPFile]] = {}
        httputil.parse_body_arguments(
            self.request.headers.get("Content-Type", ""), b"".join(self.kept), arguments, files
        )
        uploaded = files.get("certificate") or []
        if not uploaded:
            raise web.HTTPError(400, "choose a certificate file (.json) to upload")
        self._show(uploaded[0]["body"])

    def _show(self, content: bytes) -> None:
        if len(content) > MAX_CERTIFICATE_BYTES:
            raise web.HTTPError(400, TOO_LARGE)
        verdict = _verdict_view(self.config.classroom.verify(content))
        self.render_page("verify.html", _verdict_status(verdict), verdict=verdict)


class VerifyById(PublicHandler):
    """``verify/<id>``: the link and QR code printed on a certificate."""

    def get(self, certificate: str) -> None:
        content = self.config.classroom.certificate(certificate)
        if content is None:
            verdict = {
                "status": "unknown",
                "valid": False,
                "message": "this hub issued no certificate with that id",
                "record": None,
            }
        else:
            verdict = _verdict_view(self.config.classroom.verify(content))
        if self.is_api:
            self.answer_json(verdict)
        else:
            self.render_page("verify.html", verdict=verdict)


class VerifyApi(PublicHandler):
    """``api/verify``: the certificate's bytes as the body; the verdict as JSON."""

    def post(self) -> None:
        content = self.request.body
        if len(content) > MAX_CERTIFICATE_BYTES:
            raise web.HTTPError(400, TOO_LARGE)
        verdict = _verdict_view(self.config.classroom.verify(content))
        self.answer_json(verdict, _verdict_status(verdict))


class KeysDocument(PublicHandler):
    def get(self) -> None:
        self.set_header("Cache-Control", "public, max-age=300")
        self.answer_json(self.config.classroom.public_keys())


class RevocationsDocument(PublicHandler):
    def get(self) -> None:
        self.set_header("Cache-Control", "no-cache")
        self.answer_json(self.config.classroom.revocations())


class PersonHandler(HubOAuthenticated, BaseHandler):
    """Pages and API for a signed-in person; the library decides what they may do."""

    @property
    def person(self) -> Person:
        return Person.from_hub(self.config.settings, self.current_user)

    def see_other(self, path: str) -> None:
        """After a form POST, the page to show (303: the browser GETs it)."""
        self.redirect(f"{self.config.prefix}{path}", status=303)


def _deadline(value: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadInput(
            f"deadline {value[:40]!r}: give a date and time, e.g. 2026-12-20T17:00"
        ) from None
    return parsed if parsed.tzinfo else parsed.astimezone()


class HomePage(PersonHandler):
    @web.authenticated
    async def get(self) -> None:
        person = self.person

        async def show() -> None:
            self.render_page(
                "home.html",
                person=person,
                courses=self.config.classroom.courses_for(person),
                teaches=sorted(person.teaches),
                lab=f"/user/{quote(person.name)}/lab/tree/courses/",
                xsrf=self.xsrf_form_html(),
            )

        await self.guarded(show)


class MeApi(PersonHandler):
    @web.authenticated
    def get(self) -> None:
        person = self.person
        courses = self.config.classroom.courses_for(person)
        self.answer_json(
            {
                "name": person.name,
                "role": person.role,
                "teaches": sorted(person.teaches),
                "learns": sorted(person.learns),
                "courses": [asdict(c) for c in courses],
            }
        )


class CohortPage(PersonHandler):
    @web.authenticated
    async def get(self, cohort: str) -> None:
        person = self.person

        def show() -> None:
            view = self.config.classroom.cohort(person, cohort)
            if self.is_api:
                self.answer_json(asdict(view))
                return
            self.render_page(
                "cohort.html",
                person=person,
                cohort=view,
                courses=self.config.classroom.courses_to_publish(person),
                xsrf=self.xsrf_form_html(),
            )

        await self.guarded(show)


class PublishAction(PersonHandler):
    @web.authenticated
    async def post(self, cohort: str) -> None:
        person = self.person

        def act() -> None:
            args = (
                json.loads(self.request.body or b"{}")
                if self.is_api
                else {
                    "course": self.get_body_argument("course", ""),
                    "deadline": self.get_body_argument("deadline", ""),
                }
            )
            deadline = _deadline(str(args.get("deadline") or ""))
            published = self.config.classroom.publish(
                person, cohort, str(args.get("course", "")), deadline
            )
            if self.is_api:
                self.answer_json(asdict(published), 201)
            else:
                self.see_other(f"cohorts/{quote(cohort)}")

        await self.guarded(act)


class GradeAction(PersonHandler):
    @web.authenticated
    async def post(self, cohort: str) -> None:
        person = self.person
        course = self.get_body_argument("course", "") if not self.is_api else ""

        def act() -> None:
            job = self.config.classroom.grade(person, cohort, course)
            if self.is_api:
                self.answer_json(job, 202)
            else:
                self.see_other(f"cohorts/{quote(cohort)}")

        await self.guarded(act)


class SubmitAction(PersonHandler):
    @web.authenticated
    async def post(self, course: str) -> None:
        person = self.person

        def act() -> None:
            submitted = self.config.classroom.submit(person, course)
            if self.is_api:
                self.answer_json(submitted, 201)
            else:
                self.see_other("")

        await self.guarded(act)


class SubmissionsPage(PersonHandler):
    @web.authenticated
    async def get(self, cohort: str, trainee: str) -> None:
        person = self.person

        def show() -> None:
            found = self.config.classroom.submissions(person, cohort, trainee)
            self.answer_json({"submissions": found})

        await self.guarded(show)


class RevokeAction(PersonHandler):
    @web.authenticated
    async def post(self, certificate: str = "") -> None:
        person = self.person
        # The page's form names the certificate in a field; the API in the path.
        certificate = certificate or self.get_body_argument("certificate", "").strip().lower()

        def act() -> None:
            if self.is_api:
                reason = str(json.loads(self.request.body or b"{}").get("reason", ""))
            else:
                reason = self.get_body_argument("reason", "")
            entry = self.config.classroom.revoke(person, certificate, reason)
            if self.is_api:
                self.answer_json(entry)
            else:
                self.see_other(f"verify/{quote(certificate)}")

        await self.guarded(act)


class NotHere(BaseHandler):
    """Anything else under the prefix: 404 (the service opens only what people need)."""

    def prepare(self) -> None:
        raise web.HTTPError(404, "no such page")


NAME = r"([a-z0-9][a-z0-9._-]{0,63})"
"""Cohort, course and user names in paths (what the settings and curriculum allow)."""


def make_app(config: ServiceConfig, cookie_secret: bytes) -> web.Application:
    """The service's tornado application.

    Its person handlers find the hub's OAuth client as JupyterHub's service helpers do:
    ``HubOAuth.instance()``, configured from the ``JUPYTERHUB_*`` variables the hub gives a
    managed service; ``cookie_secret`` signs the OAuth cookie.
    """
    p = config.prefix
    routes: list[tuple[str, type[web.RequestHandler]]] = [
        (f"{p}verify", VerifyPage),
        (f"{p}verify/([0-9a-f]{{1,64}})", VerifyById),
        (f"{p}api/verify/([0-9a-f]{{1,64}})", VerifyById),
        (f"{p}api/verify", VerifyApi),
        (f"{p}keys.json", KeysDocument),
        (f"{p}revocations.json", RevocationsDocument),
        (p, HomePage),
        (f"{p}api/me", MeApi),
        (f"{p}cohorts/{NAME}", CohortPage),
        (f"{p}api/cohorts/{NAME}", CohortPage),
        (f"{p}cohorts/{NAME}/publish", PublishAction),
        (f"{p}api/cohorts/{NAME}/publish", PublishAction),
        (f"{p}cohorts/{NAME}/grade", GradeAction),
        (f"{p}api/cohorts/{NAME}/grade", GradeAction),
        (f"{p}courses/{NAME}/submit", SubmitAction),
        (f"{p}api/courses/{NAME}/submit", SubmitAction),
        (f"{p}api/cohorts/{NAME}/trainees/{NAME}/submissions", SubmissionsPage),
        (f"{p}certificates/revoke", RevokeAction),
        (f"{p}api/certificates/([0-9a-f]{{1,64}})/revoke", RevokeAction),
    ]
    handlers: list[Any] = [(f"{p}oauth_callback", HubOAuthCallbackHandler)]
    handlers += [(path, handler, {"config": config}) for path, handler in routes]
    handlers.append((f"{p}.*", NotHere, {"config": config}))
    return web.Application(
        handlers,
        cookie_secret=cookie_secret,
        # Not tornado's own check, which runs before the person is known and so refuses API
        # calls made with a token: HubOAuth checks the hub's XSRF token itself whenever it
        # would accept the cookie for anything but a plain page view, and accepts no cookie
        # without it (the POST is then refused: nobody is signed in).
        xsrf_cookies=False,
    )
