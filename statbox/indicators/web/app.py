"""The indicators service's pages and JSON API, under ``/services/indicators/``.

Every handler identifies the person through the hub (:class:`HubOAuthenticated`: the
service's OAuth cookie, or ``Authorization: token ...``) when there is one, and otherwise
serves the anonymous visitor: what anyone may see is the library's decision
(:class:`statbox.indicators.library.Indicators`, called with ``None`` for a visitor), so a
``production`` indicator of a hub whose ``indicators.public`` is true is readable without
login, like the classroom's verification page, and anything else answers 404 exactly as an
indicator that does not exist. ``login`` sends a visitor through the hub's sign-in.

Pages are server-rendered (Jinja2, CSS inline, the plot as inline SVG drawn here, no
script, nothing fetched from elsewhere); the two actions (Run now, Promote) are form POSTs
answered by a redirect (303). HubOAuth accepts its cookie for a POST only with the hub's
XSRF token (the forms carry it), so a forged POST finds nobody signed in and is refused.
What a signed-in person may do is again the library's decision: its refusals become 403/404.

Pages speak the reader's language exactly as the classroom's (:mod:`statbox.i18n`: the saved
choice, the browser's, the hub's; the same catalogs, cookie and language form); the JSON API
answers in English, its codes (stages, outcomes) as stored.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import jinja2
from babel import Locale
from babel.numbers import format_decimal
from jinja2.runtime import Context
from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from tornado import web

from statbox.classroom import Actor, NotAllowed
from statbox.classroom.web.app import (
    STATUS_WORDS,
    page_language,
    page_templates,
    plain,
    refusals,
    save_language,
    speaker_of,
)
from statbox.errors import BadInput
from statbox.i18n import Speaker
from statbox.i18n import _ as N_
from statbox.indicators.library import Indicators, IndicatorView
from statbox.indicators.schedule import Journal
from statbox.indicators.spec import STAGES
from statbox.indicators.web import plot

log = logging.getLogger("statbox.indicators.web")

DOWNLOADS = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "sdmx-csv": ("application/vnd.sdmx.data+csv; version=2.0.0; charset=utf-8", "sdmx.csv"),
    "sdmx-json": ("application/vnd.sdmx.data+json; version=2.0.0; charset=utf-8", "sdmx.json"),
}
"""Download formats: (media type, file name suffix)."""
PUBLIC_CACHE = "public, max-age=60"
"""What a shared cache may keep of an anonymous answer (Vary keeps it from signed-in ones,
and one language's page from a reader of another)."""

WORDS: dict[str, str] = {
    "poc": N_("proof of concept"),
    "pilot": N_("pilot"),
    "production": N_("production"),
    "weekly": N_("weekly"),
    "monthly": N_("monthly"),
    "schedule": N_("scheduled"),
    "manual": N_("by hand"),
    "backfill": N_("backfill"),
    "succeeded": N_("succeeded"),
    "failed": N_("failed"),
}
"""How the pages name the stages, frequencies, triggers and outcomes the library stores as
codes (the codes stay in the API and in class names)."""


@dataclass
class ServiceConfig:
    """What the handlers share: the prefix (slashes at both ends), the library, templates,
    and the threads manual runs go to (a run is minutes of a kernel: never on the loop)."""

    prefix: str
    indicators: Indicators
    templates: Callable[[str], jinja2.Environment]
    """The pages in a language (:func:`template_environment`)."""
    runs: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="manual-run")
    )
    runs_refused: str | None = None
    """Why this service may not run notebooks (statbox.classroom.web.app.unisolated_grading),
    or None: pages are served either way."""
    language: str = "en"
    """The hub's language (``hub.language``): a person who chose none and whose browser
    asks for none we speak gets it."""
    started: set[str] = field(default_factory=set)
    """Indicators with a manual run queued or under way: one at a time each (a Run now
    clicked a hundred times queued a hundred kernels and a hundred identical vintages)."""
    started_lock: threading.Lock = field(default_factory=threading.Lock)


def template_environment(language: str = "en") -> jinja2.Environment:
    """The pages (``statbox/indicators/web/templates``) in ``language``, as the classroom's."""
    return page_templates("statbox.indicators.web", language, number=_number)


@jinja2.pass_context
def _number(context: Context, value: float | None, signed: bool = False) -> str:
    """A value (6 significant digits) or a change (4, with its sign) written as the page's
    language writes numbers: ``12,5`` in French and Portuguese, where ``12.5`` would read
    as twelve thousand five hundred (Babel's CLDR data; the digits stay 0-9)."""
    if value is None:
        return ""
    if not math.isfinite(value):
        return str(value)
    rounded = float(f"{value:.{4 if signed else 6}g}")
    text = format_decimal(
        rounded, locale=Locale.parse(context["lang"], sep="-"), decimal_quantization=False
    )
    return f"+{text}" if signed and rounded > 0 else text


MAX_LATEST = 200
"""Series whose latest value an indicator's page lists; the downloads hold every one."""


class Handler(HubOAuthenticated, web.RequestHandler):
    """Anyone; the person when the hub says who they are."""

    config: ServiceConfig

    def initialize(self, config: ServiceConfig) -> None:
        self.config = config

    @property
    def is_api(self) -> bool:
        return self.request.path.startswith(f"{self.config.prefix}api/")

    @property
    def actor(self) -> Actor | None:
        """The signed-in person (from the hub's user model, never the request), or None."""
        model = self.current_user
        if not model:
            return None
        return Actor.user(str(model["name"]), [str(g) for g in model.get("groups") or []])

    @property
    def library(self) -> Indicators:
        return self.config.indicators

    def set_default_headers(self) -> None:
        # Nothing of ours is framed elsewhere, nor loads anything from elsewhere.
        self.set_header(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
            "form-action 'self'; frame-ancestors 'none'",
        )
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "same-origin")
        # The language is the cookie's choice, else the browser's (Accept-Language).
        self.set_header("Vary", "Cookie, Authorization, Accept-Language")

    def cache(self) -> None:
        """Anonymous answers are the same for every visitor; a person's are theirs."""
        if self.actor is None:
            self.set_header("Cache-Control", PUBLIC_CACHE)
        else:
            self.set_header("Cache-Control", "no-store, private")

    @property
    def speaker(self) -> Speaker:
        """The person's language, as the classroom's (:func:`speaker_of`)."""
        return speaker_of(self, self.config.language)

    def said(self, message: str, **values: object) -> str:
        """One of our messages for this request: in the reader's language on a page, as
        written (English) in the API, as the classroom's API answers."""
        if self.is_api:
            return message % values if values else message
        return self.speaker.text(message, **values)

    def render_page(
        self, name: str, status: int = 200, user: str | None = None, **values: Any
    ) -> None:
        speaker = self.speaker
        template = self.config.templates(speaker.language).get_template(name)
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Language", speaker.language)
        self.finish(
            template.render(
                prefix=self.config.prefix,
                user=user,
                words=WORDS,
                **page_language(speaker),
                **values,
            )
        )

    def render_own_page(self, name: str, **values: Any) -> None:
        """A page of the signed-in person (their name in its header) or of a visitor."""
        actor = self.actor
        self.render_page(name, user=actor.name if actor else None, **values)

    def answer_json(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(plain(value)))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """One sentence, never a traceback, as JSON for the API and a page otherwise."""
        self.set_header("Cache-Control", "no-store")
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(exc, "log_message", None) if isinstance(exc, web.HTTPError) else None
        message = message or STATUS_WORDS.get(status_code, self._reason)
        if self.is_api:
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"status": status_code, "message": message}))
            return
        actor = self.actor if status_code != 403 else None
        # Our own messages are in the catalogs; the library's refusals (names, paths) are not.
        self.render_page(
            "error.html",
            status_code,
            user=actor.name if actor else None,
            code=status_code,
            message=self.speaker.gettext(message),
        )

    def view(self, indicator: str) -> IndicatorView:
        """The indicator, or 404 when the requester may not see it."""
        found: list[IndicatorView] = []
        refusals(lambda: found.append(self.library.get(self.actor, indicator)))
        return found[0]


def summary(view: IndicatorView, rows: list[dict[str, str]]) -> dict[str, Any]:
    """What the index and the API say of an indicator."""
    series = view.spec.series
    latest = plot.latest(rows, list(series.dimensions), series.measure)
    return {
        "id": view.id,
        "title": view.spec.title,
        "description": view.spec.description,
        "stage": view.stage,
        "frequency": view.spec.period.frequency,
        "latest_period": max((item.period for item in latest), default=None),
        "series": len(latest),
    }


class IndexPage(Handler):
    def get(self) -> None:
        actor = self.actor
        items = []
        for view in self.library.list(actor):
            items.append(summary(view, self.library.observations(actor, view.id)))
        self.cache()
        if self.is_api:
            self.answer_json({"indicators": items})
        else:
            self.render_own_page("index.html", indicators=items)


class Login(Handler):
    """Sign in through the hub, then back to the index."""

    @web.authenticated
    def get(self) -> None:
        self.redirect(self.config.prefix)


class IndicatorPage(Handler):
    def get(self, indicator: str) -> None:
        view = self.view(indicator)
        actor = self.actor
        rows = self.library.observations(actor, indicator)
        series = view.spec.series
        if self.is_api:
            self.cache()
            self.answer_json(
                {
                    **summary(view, rows),
                    "definition": view.to_json(),
                    "latest": plot.latest(rows, list(series.dimensions), series.measure),
                    "runs": [
                        r.model_dump(mode="json") for r in self.library.runs(actor, indicator)
                    ],
                    "revisions": [
                        r.model_dump(mode="json") for r in self.library.revisions(actor, indicator)
                    ],
                }
            )
            return
        runs = self.library.runs(actor, indicator)
        journal = Journal(self.library.state_dir / "indicators" / indicator).entries()
        self.cache()
        latest = plot.latest(rows, list(series.dimensions), series.measure)
        self.render_own_page(
            "indicator.html",
            view=view,
            figures=plot.figures(rows, list(series.dimensions), series.measure),
            # a page a thin link can load: the rest of the series are in the downloads
            latest=latest[:MAX_LATEST],
            more_latest=max(0, len(latest) - MAX_LATEST),
            runs=runs[:50],
            more_runs=max(0, len(runs) - 50),
            revisions=self.library.revisions(actor, indicator)[:200],
            backfilling=_backfilling(journal),
            stages=STAGES,
            downloads=list(DOWNLOADS),
            started=self.get_query_argument("started", ""),
            xsrf=self.xsrf_form_html() if actor else "",
        )


def _backfilling(journal: list[dict[str, Any]]) -> bool:
    """Whether the first-start backfill of this indicator is under way."""
    events = [e.get("event") for e in journal if e.get("event") in ("backfill", "backfilled")]
    return bool(events) and events[-1] == "backfill"


class Observations(Handler):
    def get(self, indicator: str) -> None:
        self.view(indicator)
        vintage = self.get_query_argument("vintage", "latest")
        rows: list[list[dict[str, str]]] = []
        refusals(lambda: rows.append(self.library.observations(self.actor, indicator, vintage)))
        self.cache()
        self.answer_json({"indicator": indicator, "vintage": vintage, "observations": rows[0]})


class Download(Handler):
    def get(self, indicator: str, fmt: str) -> None:
        self.view(indicator)
        content: list[bytes] = []
        refusals(lambda: content.append(self.library.download(self.actor, indicator, fmt)))
        media, suffix = DOWNLOADS[fmt]
        self.cache()
        self.set_header("Content-Type", media)
        self.set_header("Content-Disposition", f'attachment; filename="{indicator}.{suffix}"')
        self.finish(content[0])


class Action(Handler):
    """A POST by a signed-in person; the answer is a redirect to the page, or JSON."""

    def field(self, name: str) -> str:
        if self.is_api:
            try:
                body = json.loads(self.request.body or b"{}")
            except ValueError:
                raise web.HTTPError(400, N_("The body is not JSON.")) from None
            return str(body.get(name, "")) if isinstance(body, dict) else ""
        return self.get_body_argument(name, "").strip()

    def done(self, value: Any, indicator: str, query: str = "", status: int = 200) -> None:
        self.set_header("Cache-Control", "no-store")
        if self.is_api:
            self.answer_json(value, status)
        else:
            self.redirect(f"{self.config.prefix}{indicator}{query}", status=303)

    def act(self, action: Callable[[], None]) -> None:
        refusals(action)


class RunNow(Action):
    """Start a run of the latest complete period as the person (its owner, or an admin)."""

    @web.authenticated
    def post(self, indicator: str) -> None:
        actor = self.actor
        assert actor is not None

        def act() -> None:
            view = self.library.get(actor, indicator)
            if self.config.runs_refused is not None and view.can_run:
                # only resource limits here: the owner's code would run beside the hub's
                # secrets (statbox.indicators.web.__main__); those who may run are told why
                raise web.HTTPError(503, self.config.runs_refused.replace("%", "%%"))
            if not view.can_run:
                # the library's own rule (IndicatorView.can_run), checked before the
                # background run so that the refusal reaches the person
                raise NotAllowed(
                    self.said(
                        N_("Only %(owner)s (its owner) and admins may run %(indicator)s."),
                        owner=view.spec.owner,
                        indicator=indicator,
                    )
                )
            with self.config.started_lock:
                if indicator in self.config.started:
                    raise web.HTTPError(409, f"a run of {indicator} is already under way")
                self.config.started.add(indicator)
            self.config.runs.submit(self._run, actor, indicator)
            self.done({"started": True, "indicator": indicator}, indicator, "?started=1", 202)

        self.act(act)

    def _run(self, actor: Actor, indicator: str) -> None:
        try:
            record = self.library.run(actor, indicator, trigger="manual")
            log.info("%s: run %s by %s %s", indicator, record.run_id, actor.name, record.outcome)
        except Exception:
            log.exception("%s: run by %s failed to start", indicator, actor.name)
        finally:
            with self.config.started_lock:
                self.config.started.discard(indicator)


class Promote(Action):
    @web.authenticated
    def post(self, indicator: str) -> None:
        actor = self.actor
        assert actor is not None

        def act() -> None:
            stage = self.field("stage")
            if not stage:
                raise BadInput(
                    self.said(N_("Choose a stage: %(stages)s."), stages=", ".join(STAGES))
                )
            now = self.library.promote(actor, indicator, stage)
            self.done({"indicator": indicator, "stage": now}, indicator)

        self.act(act)


class LanguageChoice(Handler):
    """The language form on every page, as the classroom's (the cookie is the same one)."""

    def post(self) -> None:
        save_language(self, self.config.prefix)


class NotHere(Handler):
    """Anything else under the prefix: 404."""

    def prepare(self) -> None:
        raise web.HTTPError(404, N_("No such page."))


ID = r"([a-z0-9][a-z0-9-]{1,62})"
"""Indicator ids in paths (statbox.indicators.spec.ID_PATTERN)."""
FORMAT = "(" + "|".join(DOWNLOADS) + ")"


def make_app(config: ServiceConfig, cookie_secret: bytes) -> web.Application:
    """The service's tornado application (HubOAuth is configured from ``JUPYTERHUB_*``, as
    for the classroom; ``cookie_secret`` signs the OAuth cookie)."""
    p = config.prefix
    routes: list[tuple[str, type[web.RequestHandler]]] = [
        ("", IndexPage),
        ("login", Login),
        ("language", LanguageChoice),
        ("api/indicators", IndexPage),
        (f"api/indicators/{ID}", IndicatorPage),
        (f"api/indicators/{ID}/observations", Observations),
        (f"api/indicators/{ID}/run", RunNow),
        (f"api/indicators/{ID}/promote", Promote),
        (f"{ID}", IndicatorPage),
        (f"{ID}/download/{FORMAT}", Download),
        (f"{ID}/run", RunNow),
        (f"{ID}/promote", Promote),
    ]
    handlers: list[Any] = [(f"{p}oauth_callback", HubOAuthCallbackHandler)]
    handlers += [(f"{p}{path}", handler, {"config": config}) for path, handler in routes]
    handlers.append((f"{p}.*", NotHere, {"config": config}))
    return web.Application(
        handlers,
        cookie_secret=cookie_secret,
        # HubOAuth checks the hub's XSRF token itself whenever it would accept its cookie for
        # anything but a plain page view (see statbox.classroom.web.app.make_app).
        xsrf_cookies=False,
    )
