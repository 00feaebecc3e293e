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
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import jinja2
from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from tornado import web

from statbox.classroom import Actor, NotAllowed
from statbox.classroom.web.app import STATUS_WORDS, plain, refusals
from statbox.errors import BadInput
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
"""What a shared cache may keep of an anonymous answer (Vary keeps it from signed-in ones)."""


@dataclass
class ServiceConfig:
    """What the handlers share: the prefix (slashes at both ends), the library, templates,
    and the threads manual runs go to (a run is minutes of a kernel: never on the loop)."""

    prefix: str
    indicators: Indicators
    templates: jinja2.Environment
    runs: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="manual-run")
    )
    runs_refused: str | None = None
    """Why this service may not run notebooks (statbox.classroom.web.app.unisolated_grading),
    or None: pages are served either way."""
    started: set[str] = field(default_factory=set)
    """Indicators with a manual run queued or under way: one at a time each (a Run now
    clicked a hundred times queued a hundred kernels and a hundred identical vintages)."""
    started_lock: threading.Lock = field(default_factory=threading.Lock)


def template_environment() -> jinja2.Environment:
    """Templates from the package (``statbox/indicators/web/templates``), escaped."""
    folder = resources.files("statbox.indicators.web") / "templates"
    loader = jinja2.DictLoader(
        {item.name: item.read_text() for item in folder.iterdir() if item.name.endswith(".html")}
    )
    environment = jinja2.Environment(
        loader=loader, autoescape=True, undefined=jinja2.StrictUndefined
    )
    environment.filters["number"] = _number
    return environment


def _number(value: float | None, signed: bool = False) -> str:
    if value is None:
        return ""
    return f"{value:+,.4g}" if signed else f"{value:,.6g}"


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
        self.set_header("Vary", "Cookie, Authorization")

    def cache(self) -> None:
        """Anonymous answers are the same for every visitor; a person's are theirs."""
        if self.actor is None:
            self.set_header("Cache-Control", PUBLIC_CACHE)
        else:
            self.set_header("Cache-Control", "no-store, private")

    def render_page(self, name: str, status: int = 200, **values: Any) -> None:
        template = self.config.templates.get_template(name)
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        actor = self.actor
        self.finish(
            template.render(prefix=self.config.prefix, user=actor.name if actor else None, **values)
        )

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
        self.set_header("Content-Type", "text/html; charset=utf-8")
        template = self.config.templates.get_template("error.html")
        actor = self.actor if status_code != 403 else None
        self.finish(
            template.render(
                prefix=self.config.prefix,
                user=actor.name if actor else None,
                status=status_code,
                message=message,
            )
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
            self.render_page("index.html", indicators=items)


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
        self.render_page(
            "indicator.html",
            view=view,
            figures=plot.figures(rows, list(series.dimensions), series.measure),
            latest=plot.latest(rows, list(series.dimensions), series.measure),
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
                raise web.HTTPError(400, "the body is not JSON") from None
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
                    f"only {view.spec.owner} (its owner) and admins may run {indicator}"
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
                raise BadInput(f"choose a stage: {', '.join(STAGES)}")
            now = self.library.promote(actor, indicator, stage)
            self.done({"indicator": indicator, "stage": now}, indicator)

        self.act(act)


class NotHere(Handler):
    """Anything else under the prefix: 404."""

    def prepare(self) -> None:
        raise web.HTTPError(404, "no such page")


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
