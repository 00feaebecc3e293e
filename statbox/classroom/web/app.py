"""The classroom service's pages and JSON API, under ``/services/classroom/``.

Two kinds of handler:

* Public, no login, no cookie read (:class:`PublicHandler`): the verification page
  (``verify``, ``verify/<id>``), the hub's public keys (``keys.json``) and signed revocation
  list (``revocations.json``). They change nothing and use no credential, so they ask for no
  XSRF token; an upload is bounded (:data:`MAX_CERTIFICATE_BYTES`).
* Everything else (:class:`PersonHandler`): the person is identified by the hub
  (:class:`~jupyterhub.services.auth.HubOAuthenticated`: the service's OAuth cookie, or
  ``Authorization: token ...`` for the API); a browser without a session is sent to log
  in. HubOAuth accepts the cookie for anything but a plain page view only with the hub's
  XSRF token, so a form POST without it finds nobody signed in and is refused. What a
  person may do is decided by the classroom library (:class:`statbox.classroom.Classroom`,
  called with an :class:`~statbox.classroom.Actor` built from the hub's user model), never
  here: its refusals become 403 and 404.

Pages are server-rendered (Jinja2, CSS inline, nothing fetched from elsewhere, no script:
a running grading job's page refreshes itself with a ``<meta>`` tag); every action is a
plain form POST answered by a redirect (303). The API under ``api/`` answers JSON with the
same checks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, is_dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated
from tornado import httputil, web

from statbox.certify.certificates import Status, Verdict, lift, revoke
from statbox.certify.isolation import RlimitsIsolation, backend_class
from statbox.classroom import Actor, Classroom, NotAllowed, NotFound
from statbox.classroom.service import parse_deadline
from statbox.classroom.state import read_json
from statbox.classroom.web.public import PublicDocuments
from statbox.courses.model import LoadedCourse, load_curriculum
from statbox.errors import BadInput
from statbox.i18n import COOKIE, LANGUAGES, NAMES, Speaker, translations
from statbox.i18n import _ as N_

MAX_CERTIFICATE_BYTES = 64 * 1024
"""A certificate file is a few KiB; anything above this is not one."""
MAX_UPLOAD_BYTES = MAX_CERTIFICATE_BYTES + 16 * 1024
"""What the verification form keeps of an upload: the file and the form's own framing."""
MAX_BODY_BYTES = 1024 * 1024
"""What the server reads of any other request body (the HTTP server's own limit)."""
MAX_DRAINED_BYTES = 256 * 1024 * 1024
"""What the verification form reads (and drops) before cutting an upload off."""
TOO_LARGE = N_("That file is larger than a certificate: 64 KiB at most.")

ERRORS: tuple[tuple[type[Exception], int], ...] = (
    (NotAllowed, 403),
    (NotFound, 404),
    (BadInput, 400),
)
"""Library errors and the status each is answered with (the first that matches)."""

STATUS_WORDS = {400: N_("Bad request"), 403: N_("Forbidden"), 404: N_("Not found")}
REPORT_FILE = re.compile(r"report\.(html|csv)|certificates/[a-z0-9][a-z0-9._-]{0,80}")
"""What of a grading run an instructor may download: the report and its certificates."""


@dataclass(frozen=True)
class ServiceConfig:
    """What the handlers share: the prefix (slashes at both ends), the library, templates."""

    prefix: str
    classroom: Classroom
    public: PublicDocuments
    templates: Callable[[str], jinja2.Environment]
    """The pages in a language (:func:`template_environment`)."""
    grading_refused: str | None = None
    """Why this service may not grade (:func:`unisolated_grading`), or None."""
    language: str = "en"
    """The hub's language (``hub.language``): a person who chose none and whose browser
    asks for none we speak gets it."""


def unisolated_grading(isolation: str) -> str | None:
    """Why grading started from the classroom would not be isolated, or None.

    The service runs as the hub's account, beside the hub's secrets and the certificates'
    signing key: trainees' code graded with ``rlimits`` (what ``auto`` falls back to without
    root) would run as that account and could read them, and sign itself a certificate.
    """
    try:
        backend = backend_class(isolation)
    except BadInput as exc:
        return str(exc)
    if backend is RlimitsIsolation:
        return (
            "grading from the classroom needs an isolated grader (certify.isolation: sandbox, "
            "with statbox up as root, or docker); with rlimits trainees' code would run as "
            "the hub's account. Grade on the host: statbox certify grade"
        )
    return None


@cache
def page_templates(
    package: str, language: str, **filters: Callable[..., str]
) -> jinja2.Environment:
    """The page templates of ``package`` (its ``templates`` folder), escaped, speaking
    ``language`` (``_("...")`` in a template is a message of the catalogs). The classroom's
    and the indicators' pages are made the same way."""
    folder = resources.files(package) / "templates"
    loader = jinja2.DictLoader(
        {item.name: item.read_text() for item in folder.iterdir() if item.name.endswith(".html")}
    )
    environment = jinja2.Environment(
        loader=loader,
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
    )
    texts = translations(language)
    environment.install_gettext_callables(  # type: ignore[attr-defined]
        texts.gettext, texts.ngettext, newstyle=True
    )
    environment.filters.update(filters)
    return environment


def listen_as_hub_service(app: web.Application, address: str, max_body: int) -> str:
    """Serve ``app`` (a hub-managed service's pages) on ``address`` (``http://host:port``)
    behind the hub's proxy, whose forwarded headers it trusts; return ``host:port``. The
    service's HubOAuth is configured from JUPYTERHUB_* before any handler asks for it."""
    HubOAuth.instance()
    listen = urlsplit(address)
    app.listen(
        listen.port or 80, listen.hostname or "127.0.0.1", xheaders=True, max_body_size=max_body
    )
    return listen.netloc


def template_environment(language: str = "en") -> jinja2.Environment:
    """The classroom's pages (``statbox/classroom/web/templates``) in ``language``."""
    return page_templates("statbox.classroom.web", language)


def speaker_of(handler: web.RequestHandler, hub_language: str) -> Speaker:
    """The language of a request: the person's saved choice (the cookie), their browser's
    (``Accept-Language``), else the hub's."""
    return Speaker.of(
        handler.get_cookie(COOKIE), handler.request.headers.get("Accept-Language"), hub_language
    )


def page_language(speaker: Speaker) -> dict[str, Any]:
    """What every page's ``base.html`` needs of its language: ``<html lang dir>`` and the
    language form's choices."""
    return {
        "lang": speaker.language,
        "dir": speaker.dir,
        "languages": [(tag, NAMES[tag]) for tag in LANGUAGES],
    }


def save_language(handler: web.RequestHandler, prefix: str) -> None:
    """Answer the language form posted to ``handler``: save the choice in a cookie the hub's
    pages read too (path ``/``), then go back to the page it was sent from (the ``Referer``,
    which the pages' same-origin policy sends) if that is one of the service's pages under
    ``prefix``. Pages do not carry their own address in the form: nothing of a request is
    echoed into a page."""
    language = handler.get_body_argument("language", "")
    if language not in LANGUAGES:
        raise web.HTTPError(400, N_("Choose one of the languages offered."))
    back = urlsplit(handler.request.headers.get("Referer", "")).path
    if not back.startswith(prefix) or "//" in back or "\\" in back:
        back = prefix
    handler.set_cookie(COOKIE, language, path="/", expires_days=365, samesite="Lax")
    handler.redirect(back, status=303)


def plain(value: Any) -> Any:
    """Library results as JSON-able data (dataclasses with ``as_json`` use it)."""
    if hasattr(value, "as_json"):
        return value.as_json()
    if is_dataclass(value) and not isinstance(value, type):
        return {k: plain(v) for k, v in asdict(value).items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _verdict_status(verdict: Verdict) -> int:
    """A file that is no certificate at all is the uploader's mistake (400); a tampered,
    revoked or unknown one is an answer about a certificate (200)."""
    return 400 if verdict.status is Status.NOT_A_CERTIFICATE else 200


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
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
            "form-action 'self'; frame-ancestors 'none'",
        )
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "same-origin")

    @property
    def speaker(self) -> Speaker:
        """The person's language (:func:`speaker_of`)."""
        return speaker_of(self, self.config.language)

    def render_page(self, name: str, status: int = 200, **values: Any) -> None:
        speaker = self.speaker
        template = self.config.templates(speaker.language).get_template(name)
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Language", speaker.language)
        self.finish(template.render(prefix=self.config.prefix, **page_language(speaker), **values))

    def answer_json(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(plain(value)))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """One sentence, never a traceback, as JSON for the API and a page otherwise."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(exc, "log_message", None) if isinstance(exc, web.HTTPError) else None
        message = message or STATUS_WORDS.get(status_code, self._reason)
        if self.is_api:
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"status": status_code, "message": message}))
            return
        # Our own messages are in the catalogs; the library's refusals (names, paths) are not.
        self.render_page(
            "error.html", status_code, code=status_code, message=self.speaker.gettext(message)
        )


def refusals(action: Callable[[], None]) -> None:
    """Run ``action``, answering the library's refusals with their status."""
    try:
        action()
    except BadInput as exc:
        status = next(code for kind, code in ERRORS if isinstance(exc, kind))
        raise web.HTTPError(status, str(exc)[:300].replace("%", "%%")) from None


class PublicHandler(BaseHandler):
    """Verification, keys and revocations: anyone, no login."""

    def show_verdict(self, verdict: Verdict, status: int = 200) -> None:
        if self.is_api:
            self.answer_json(verdict, status)
        else:
            self.render_page("verify.html", status, verdict=verdict)


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
            raise web.HTTPError(400, N_("Choose a certificate file (.json) to upload."))
        content = uploaded[0]["body"]
        if len(content) > MAX_CERTIFICATE_BYTES:
            raise web.HTTPError(400, TOO_LARGE)
        verdict = self.config.public.verify(content)
        self.show_verdict(verdict, _verdict_status(verdict))


class VerifyApi(PublicHandler):
    """``api/verify``: the certificate's bytes as the body; the verdict as JSON."""

    def post(self) -> None:
        content = self.request.body
        if len(content) > MAX_CERTIFICATE_BYTES:
            raise web.HTTPError(400, TOO_LARGE)
        verdict = self.config.public.verify(content)
        self.show_verdict(verdict, _verdict_status(verdict))


class VerifyById(PublicHandler):
    """``verify/<id>``: the link and QR code printed on a certificate."""

    def get(self, certificate: str) -> None:
        verdict = self.config.public.verify_by_id(certificate)
        if verdict is None:
            raise web.HTTPError(404, N_("This hub issued no certificate with that id."))
        self.show_verdict(verdict)


class KeysDocument(PublicHandler):
    def get(self) -> None:
        self.set_header("Cache-Control", "public, max-age=300")
        self.answer_json(self.config.public.key_set())


class RevocationsDocument(PublicHandler):
    def get(self) -> None:
        self.set_header("Cache-Control", "no-cache")
        self.set_header("Content-Type", "application/json")
        self.finish(self.config.public.revocations())


class PersonHandler(HubOAuthenticated, BaseHandler):
    """Pages and API for a signed-in person; the library decides what they may do."""

    def set_default_headers(self) -> None:
        super().set_default_headers()
        # a person's scores, feedback and cohort: kept by no browser or proxy cache
        self.set_header("Cache-Control", "no-store, private")

    @property
    def actor(self) -> Actor:
        model = self.current_user
        claimed = (model.get("user_info") or {}).get("name")
        return Actor.user(
            str(model["name"]),
            [str(g) for g in model.get("groups") or []],
            claimed if isinstance(claimed, str) else "",
        )

    @property
    def room(self) -> Classroom:
        return self.config.classroom

    def field(self, name: str, default: str = "") -> str:
        """A form field, or a key of the API's JSON body."""
        if self.is_api:
            try:
                body = json.loads(self.request.body or b"{}")
            except ValueError:
                raise web.HTTPError(400, N_("The body is not JSON.")) from None
            value = body.get(name, default) if isinstance(body, dict) else default
            return str(value if value is not None else default)
        return self.get_body_argument(name, default).strip()

    def done(self, value: Any, page: str, status: int = 200) -> None:
        """After an action: the result as JSON, or the page to show (303: the browser GETs)."""
        if self.is_api:
            self.answer_json(value, status)
        else:
            self.redirect(f"{self.config.prefix}{page}", status=303)


class HomePage(PersonHandler):
    @web.authenticated
    def get(self) -> None:
        actor = self.actor

        def show() -> None:
            standing = self.room.standing(actor)
            courses = []
            for publication in self.room.publications(actor):
                if publication.cohort not in standing.learns:
                    continue
                submissions = self.room.my_submissions(
                    actor, publication.course, publication.cohort
                )
                result = self.room.my_result(actor, publication.course, publication.cohort)
                courses.append(
                    {"publication": publication, "submissions": submissions, "result": result}
                )
            if self.is_api:
                self.answer_json(
                    {
                        "name": actor.name,
                        "role": standing.role,
                        "learns": sorted(standing.learns),
                        "teaches": sorted(standing.teaches),
                        "courses": courses,
                    }
                )
                return
            self.render_page(
                "home.html",
                actor=actor,
                standing=standing,
                courses=courses,
                xsrf=self.xsrf_form_html(),
            )

        refusals(show)


class OpenAction(PersonHandler):
    @web.authenticated
    def post(self, course: str) -> None:
        actor = self.actor

        language = self.speaker.language

        def act() -> None:
            # the lessons in the person's language where the course has a translation
            opened = self.room.open_course(actor, course, language=language)
            # Courses land in <home>/courses/<course>/ (statbox.courses.publish), which is
            # where the trainee's server starts; open the exercise, else the folder.
            inside = f"courses/{opened.course}/{opened.exercise or ''}".rstrip("/")
            lab = f"/user/{quote(actor.name)}/lab/tree/{quote(inside)}"
            if self.is_api:
                self.answer_json({**plain(opened), "lab": lab})
            else:
                self.redirect(lab, status=303)

        refusals(act)


class SubmitAction(PersonHandler):
    @web.authenticated
    def post(self, course: str) -> None:
        actor = self.actor
        refusals(lambda: self.done(self.room.submit(actor, course), "", 201))


CERTIFICATE_COPIES = {
    "pdf": "application/pdf",
    "json": "application/json",
    "badge.jwt": "application/vc+jwt",
}
"""The copies of their certificate a trainee downloads: to print, to have verified, and the
Open Badges 3.0 credential for a digital wallet."""


class MyCertificate(PersonHandler):
    """``courses/<course>/certificate.<pdf|json|badge.jwt>``: the signed-in trainee's own
    certificate from the released grading, when they passed; nobody else's (the trainee is the
    actor)."""

    @web.authenticated
    def get(self, course: str, kind: str) -> None:
        actor = self.actor

        def show() -> None:
            result = self.room.my_result(actor, course)
            release = read_json(self.room.layout.release(result.cohort, course)) if result else None
            job = (release or {}).get("runs", {}).get(actor.name)
            if result is None or not result.passed or not job:
                raise NotFound(f"no certificate of yours for {course} (yet)")
            run = self.room.layout.gradings(result.cohort, course) / str(job) / "run"
            path = run / "certificates" / f"{actor.name}.{kind}"
            try:
                content = path.read_bytes()
            except OSError:
                raise NotFound(f"no certificate of yours for {course}") from None
            self.set_header("Content-Type", CERTIFICATE_COPIES[kind])
            self.set_header("Content-Disposition", f'attachment; filename="{path.name}"')
            self.finish(content)

        refusals(show)


class CohortPage(PersonHandler):
    @web.authenticated
    def get(self, cohort: str) -> None:
        actor = self.actor

        def show() -> None:
            members = self.room.members(actor, cohort)
            courses = []
            for publication in self.room.publications(actor):
                if publication.cohort != cohort:
                    continue
                jobs = self.room.jobs(actor, cohort, publication.course)
                courses.append(
                    {
                        "publication": publication,
                        "roster": self.room.roster(actor, cohort, publication.course),
                        "jobs": jobs,
                        "job": jobs[-1] if jobs else None,
                    }
                )
            # Revocations that still bar one of this cohort's trainees: each can be lifted.
            barred = [
                {"certificate": c, "reason": e.get("reason", ""), "at": e.get("at", ""), **bars}
                for c, e in sorted(self.config.public.keys.revoked().items())
                if isinstance(bars := e.get("bars"), dict) and bars.get("cohort") == cohort
            ]
            if self.is_api:
                self.answer_json(
                    {"cohort": cohort, "trainees": members, "courses": courses, "barred": barred}
                )
                return
            self.render_page(
                "cohort.html",
                cohort=cohort,
                members=members,
                courses=courses,
                barred=barred,
                curriculum=sorted(load_curriculum(self.room.curriculum).values(), key=_by_id),
                xsrf=self.xsrf_form_html(),
            )

        refusals(show)


def _by_id(loaded: LoadedCourse) -> str:
    return loaded.id


class PublishAction(PersonHandler):
    @web.authenticated
    def post(self, cohort: str) -> None:
        actor = self.actor

        def act() -> None:
            text = self.field("deadline")
            deadline = parse_deadline(text) if text else None
            published = self.room.publish(actor, self.field("course"), cohort, deadline)
            self.done(published, f"cohorts/{quote(cohort)}", 201)

        refusals(act)


class GradeAction(PersonHandler):
    @web.authenticated
    def post(self, cohort: str, course: str) -> None:
        actor = self.actor

        def act() -> None:
            if self.config.grading_refused:
                self.room.members(actor, cohort)  # strangers learn nothing, not even this
                raise BadInput(self.config.grading_refused)
            trainee = self.field("trainee") or None
            job = self.room.start_grading(actor, cohort, course, trainee=trainee)
            self.done(job, f"cohorts/{quote(cohort)}/courses/{course}/jobs/{job.job}", 202)

        refusals(act)


class JobPage(PersonHandler):
    @web.authenticated
    def get(self, cohort: str, course: str, job: str) -> None:
        actor = self.actor

        def show() -> None:
            status = self.room.job(actor, cohort, course, job)
            if self.is_api:
                self.answer_json(status)
            else:
                self.render_page(
                    "job.html", cohort=cohort, course=course, job=status, xsrf=self.xsrf_form_html()
                )

        refusals(show)


class ReportAction(PersonHandler):
    """Write the run's report and its certificates (issuing them), then show it."""

    @web.authenticated
    def post(self, cohort: str, course: str, job: str) -> None:
        actor = self.actor

        def act() -> None:
            self.room.report(actor, cohort, course, job)
            base = f"cohorts/{quote(cohort)}/courses/{course}/jobs/{job}"
            self.done({"report": f"{self.config.prefix}{base}/report.html"}, f"{base}/report.html")

        refusals(act)


class ReportFile(PersonHandler):
    """A file of a grading run's report (instructors of the cohort and admins only)."""

    @web.authenticated
    def get(self, cohort: str, course: str, job: str, name: str) -> None:
        actor = self.actor
        if not REPORT_FILE.fullmatch(name):
            raise web.HTTPError(404, N_("No such file."))

        def show() -> None:
            self.room.job(actor, cohort, course, job)  # the library's check, and that it exists
            path = self.room.layout.gradings(cohort, course) / job / "run" / name
            try:
                content = path.read_bytes()
            except OSError:
                raise NotFound(f"no {name} yet: write the report first") from None
            kinds = {".html": "text/html; charset=utf-8", ".csv": "text/csv; charset=utf-8"}
            kind = kinds.get(path.suffix, "application/octet-stream")
            self.set_header("Content-Type", kind)
            if path.suffix not in (".html", ".csv"):
                self.set_header("Content-Disposition", f'attachment; filename="{path.name}"')
            self.finish(content)

        refusals(show)


class ReleaseAction(PersonHandler):
    @web.authenticated
    def post(self, cohort: str, course: str) -> None:
        actor = self.actor

        def act() -> None:
            released = self.room.release(actor, cohort, course)
            self.done({"released_to": released}, f"cohorts/{quote(cohort)}")

        refusals(act)


class RevokeAction(PersonHandler):
    """Revoke a certificate of a cohort the person teaches, with a reason."""

    @web.authenticated
    def post(self, certificate: str = "") -> None:
        actor = self.actor
        # The page's form names the certificate in a field; the API in the path.
        certificate = certificate or self.field("certificate").lower()

        def act() -> None:
            content = self.config.public.certificate(certificate)
            if content is None:
                raise NotFound(f"no certificate {certificate[:32]!r} of a cohort you teach")
            cohort = str(json.loads(content)["record"].get("cohort", ""))
            # The library's rule: only an instructor of the certificate's cohort (or an admin)
            try:
                self.room.members(actor, cohort)
            except NotAllowed:
                raise NotFound(
                    f"no certificate {certificate[:32]!r} of a cohort you teach"
                ) from None
            reason = self.field("reason")
            if not reason:
                raise BadInput("say why the certificate is revoked (reason)")
            record = json.loads(content)["record"]  # bars re-issuing to its trainee too
            entry = revoke(self.config.public.keys, certificate, reason[:500], record)
            self.done(entry, f"verify/{quote(certificate)}")

        refusals(act)


class LiftAction(PersonHandler):
    """Lift a revocation's bar (the trainee may be certified again) in a cohort the person
    teaches. The cohort comes from the bar itself: the report removed the certificate's files."""

    @web.authenticated
    def post(self, certificate: str) -> None:
        actor = self.actor

        def act() -> None:
            missing = f"no revoked certificate {certificate[:32]!r} of a cohort you teach"
            entry = self.config.public.keys.revoked().get(certificate)
            bars = entry.get("bars") if entry else None
            if not isinstance(bars, dict):
                raise NotFound(missing)
            cohort = str(bars.get("cohort", ""))
            try:
                self.room.members(actor, cohort)
            except NotAllowed:
                raise NotFound(missing) from None
            # back to the cohort's page the button was on
            self.done(lift(self.config.public.keys, certificate), f"cohorts/{quote(cohort)}")

        refusals(act)


class LanguageChoice(BaseHandler):
    """The language form on every page (:func:`save_language`)."""

    def post(self) -> None:
        save_language(self, self.config.prefix)


class NotHere(BaseHandler):
    """Anything else under the prefix: 404 (the service opens only what people need)."""

    def prepare(self) -> None:
        raise web.HTTPError(404, N_("No such page."))


NAME = r"([a-z0-9][a-z0-9._-]{0,63})"
"""Cohort, course and user names in paths (what the settings and curriculum allow)."""
JOB = r"([A-Za-z0-9][A-Za-z0-9._-]{0,63})"
CERTIFICATE = r"([0-9a-f]{1,64})"


def make_app(config: ServiceConfig, cookie_secret: bytes) -> web.Application:
    """The service's tornado application.

    Its person handlers find the hub's OAuth client as JupyterHub's service helpers do:
    ``HubOAuth.instance()``, configured from the ``JUPYTERHUB_*`` variables the hub gives a
    managed service; ``cookie_secret`` signs the OAuth cookie.
    """
    p = config.prefix
    course = f"cohorts/{NAME}/courses/{NAME}"
    both: list[tuple[str, type[web.RequestHandler]]] = [
        ("", HomePage),
        ("me", HomePage),
        (f"courses/{NAME}/open", OpenAction),
        (f"courses/{NAME}/submit", SubmitAction),
        (f"courses/{NAME}/certificate\\.(pdf|json|badge\\.jwt)", MyCertificate),
        (f"cohorts/{NAME}", CohortPage),
        (f"cohorts/{NAME}/publish", PublishAction),
        (f"{course}/grade", GradeAction),
        (f"{course}/release", ReleaseAction),
        (f"{course}/jobs/{JOB}", JobPage),
        (f"{course}/jobs/{JOB}/report", ReportAction),
        (f"{course}/jobs/{JOB}/(.+)", ReportFile),
        ("certificates/revoke", RevokeAction),
        (f"certificates/{CERTIFICATE}/revoke", RevokeAction),
        (f"certificates/{CERTIFICATE}/lift", LiftAction),
        (f"verify/{CERTIFICATE}", VerifyById),
        ("verify", VerifyApi),
    ]
    routes: list[tuple[str, type[web.RequestHandler]]] = [
        (f"{p}language", LanguageChoice),
        (f"{p}verify", VerifyPage),
        (f"{p}keys.json", KeysDocument),
        (f"{p}revocations.json", RevocationsDocument),
    ]
    for path, handler in both:
        if path not in ("me", "verify"):
            routes.append((f"{p}{path}", handler))
        if path:
            routes.append((f"{p}api/{path}", handler))
    handlers: list[Any] = [(f"{p}oauth_callback", HubOAuthCallbackHandler)]
    handlers += [(path, handler, {"config": config}) for path, handler in routes]
    handlers.append((f"{p}.*", NotHere, {"config": config}))
    return web.Application(
        handlers,
        cookie_secret=cookie_secret,
        # Not tornado's own check, which runs before the person is known and so would refuse
        # API calls made with a token: HubOAuth checks the hub's XSRF token itself whenever
        # it would accept the cookie for anything but a plain page view, and accepts no
        # cookie without it (the POST is then refused: nobody is signed in).
        xsrf_cookies=False,
    )
