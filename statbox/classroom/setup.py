"""A :class:`~statbox.classroom.service.Classroom` from the settings, for the command line and
the classroom service alike (so both grade with the same isolation, limits and store)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from statbox.certify.runner import GradingSetup
from statbox.classroom.service import Classroom
from statbox.settings.model import LoadedSettings, Mode, Settings


def results_store(loaded: LoadedSettings) -> str:
    """The URL of the results store the settings name (``certify.database``)."""
    from statbox.certify.store import results_url

    base = Path(loaded.source).resolve().parent if loaded.source is not None else None
    return results_url(loaded.settings.certify.database, loaded.paths.state_dir, base)


def service_isolation(settings: Settings) -> str:
    """The grading backend of the classroom service the hub starts: ``auto`` in docker mode
    is ``docker`` (the service runs in the hub's container, unprivileged and without
    bubblewrap, beside the Docker engine's socket); otherwise ``certify.isolation``."""
    isolation = settings.certify.isolation
    return "docker" if isolation == "auto" and settings.mode is Mode.docker else isolation


def grading_setup(loaded: LoadedSettings, isolation: str | None = None) -> GradingSetup:
    """The runner's view of the settings (paths, store, isolation (``isolation``, else
    ``certify.isolation``) and limits)."""
    from statbox.catalog.access import RoleAccess
    from statbox.certify.isolation import Limits
    from statbox.settings.model import ROLE_NAMES

    certify = loaded.settings.certify
    isolation = isolation or certify.isolation
    options: dict[str, Any] = {}
    if isolation == "docker":
        from statbox.modes.docker.stack import singleuser_image

        settings = loaded.settings
        options = {"image": singleuser_image(settings), "project": settings.docker.project}
    hidden = [Path.home()]
    if loaded.source is not None:
        hidden.append(Path(loaded.source).resolve())
    return GradingSetup(
        curriculum=loaded.paths.curriculum,
        # a data URL stays a string: the runner's data step refuses it with its own message
        data_root=loaded.paths.data_root,  # type: ignore[arg-type]
        state_dir=loaded.paths.state_dir,
        catalog=loaded.paths.catalog,
        database=results_store(loaded),
        isolation=isolation,
        uid_base=certify.uid_base,
        limits=Limits(
            memory=certify.memory,
            processes=certify.processes,
            output=certify.output,
            workdir=certify.workdir,
        ),
        hidden=hidden,
        isolation_options=options,
        access={role: RoleAccess.of(loaded.settings, role) for role in ROLE_NAMES},
    )


def issuer(loaded: LoadedSettings) -> str:
    """Who issues certificates: the hub's name and region."""
    hub = loaded.settings.hub
    return f"{hub.name}, {hub.region}" if hub.region else hub.name


def classroom_from_settings(
    loaded: LoadedSettings, state_dir: Path | None = None, isolation: str | None = None
) -> Classroom:
    """The classroom of the hub these settings describe (homes of its deployment mode;
    grading with ``isolation``, else ``certify.isolation``)."""
    from statbox.modes.base import deployment

    if state_dir is not None:  # every path under the state follows it (secrets, results)
        paths = loaded.paths.model_copy(update={"state_dir": state_dir})
        loaded = LoadedSettings(loaded.settings, loaded.source, paths)
    state = loaded.paths.state_dir
    homes = deployment(loaded.settings.mode).homes(loaded, state)
    return Classroom(
        loaded.settings,
        loaded.paths.curriculum,
        state,
        homes,
        grading_setup(loaded, isolation),
        issuer(loaded),
    )
