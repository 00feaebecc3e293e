"""Local mode: each user's server is a process on this machine, in the user's own sandbox.

Every server runs in :class:`statbox.sandbox.Sandbox` (an allow-list root, new PID, IPC, UTS
and mount namespaces) under a uid of its user's own (:class:`~statbox.sandbox.accounts.
UidRegistry`, persisted in the state directory: the same uid after a restart, the same one the
gateway gives the user's Dask clusters), in a control group sized by the user's role.

Invariants:

* A server sees: the system and interpreter read-only; its own home read-write (0700, owned
  by its uid); the course material without any ``grader/`` folder; each dataset the role is
  entitled to, bound on its own, read-only; and a catalog file listing only those entries
  (``STATBOX_CATALOG``). Nothing else: not other homes, not the state directory, not the
  checkout around the interpreter. ``STATBOX_GROUPS`` is information; the mounts decide.
* Its environment (with its ``JUPYTERHUB_API_TOKEN``) is handed over by inheritance, never on
  a command line, so only its own uid (inside its own PID namespace) and root can read it.
* Stopping or culling a server kills its whole control group: nothing it started, detached
  or not, survives it.
* The hub stores a server's pid with its start time and control group
  (:class:`~statbox.sandbox.records.ProcessRecord`); after a restart, a stored pid whose
  holder does not match them is the server gone, and is never signalled (a reused pid
  once made the hub kill an unrelated root process).
* Not root, the sandbox still gives a private root and namespaces, but every server runs
  under the hub's own account and without caps (``statbox doctor`` says so).

Start-up is kept short in three places (see bench/spawn.py): the server imports less
(:mod:`statbox.spawners.singleuser`); :meth:`StatboxLocalSpawner.start` returns only once the
server's port accepts connections, polling every ``ready_poll_interval`` seconds, so the hub's
own readiness check (exponential back-off, 0.2 s growing to 5 s) succeeds on its first try
instead of sleeping past the moment the server came up; and at most ``concurrent_starts``
servers start at once, the rest queued, so a class logging in together is served in order rather
than all slowly."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml
from jupyterhub.spawner import SimpleLocalProcessSpawner
from jupyterhub.utils import random_port
from traitlets import Float, Integer, Unicode, default

from statbox.catalog.access import entitled_entries
from statbox.contract import CATALOG_ENV, is_data_url
from statbox.sandbox import CgroupTree, ResourceCaps, Sandbox, interpreter_paths
from statbox.sandbox.accounts import UidRegistry, registry_path
from statbox.sandbox.records import ProcessRecord
from statbox.settings.model import Settings
from statbox.spawners.base import StatboxSpawnerMixin, wait_until_listening

GRADER_DIR = "grader"
"""A course's solutions and hidden checks (statbox.courses.model.GRADER_DIR): never bound."""

TMP_SIZE = 512 * 1024**2
"""The server's private /tmp (memory, counted against its control group)."""


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def user_catalog(settings: Settings, role: str, groups: list[str], catalog: Path) -> dict:
    """The root catalog with only the entries the user is entitled to (and their data)."""
    names = {e.name for e in entitled_entries(settings, role, groups, catalog)}
    return _only(yaml.load(catalog.read_text(), Loader=_LOADER), names)


def _only(document: dict, names: set[str]) -> dict:
    def keep(key: str) -> bool:
        return any(key == name or key.startswith(name + ".") for name in names)

    kept = dict(document)
    for section in ("entries", "aliases", "data"):
        if isinstance(kept.get(section), dict):
            kept[section] = {k: v for k, v in kept[section].items() if keep(k)}
    return kept


@dataclass(frozen=True)
class Entitlement:
    """What one role and set of groups may read: their catalog (YAML) and dataset folders."""

    catalog: str
    data_paths: tuple[str, ...]
    """Relative to the data root."""


_ENTITLEMENTS: dict[tuple[object, ...], Entitlement] = {}


def entitlement(settings: Settings, role: str, groups: list[str], catalog: Path) -> Entitlement:
    """:class:`Entitlement` of a user, worked out once per role, groups and catalog version
    (parsing and writing the catalog costs about 0.5 s a server start otherwise)."""
    key = (id(settings), str(catalog), catalog.stat().st_mtime_ns, role, tuple(sorted(groups)))
    found = _ENTITLEMENTS.get(key)
    if found is None:
        entries = entitled_entries(settings, role, groups, catalog)
        document = _only(yaml.load(catalog.read_text(), Loader=_LOADER), {e.name for e in entries})
        found = Entitlement(
            yaml.dump(document, Dumper=_DUMPER, sort_keys=False),
            tuple(sorted({e.data_path for e in entries})),
        )
        _ENTITLEMENTS[key] = found
    return found


def entitled_directories(data_root: str, relative: tuple[str, ...]) -> list[Path]:
    """The dataset folders the user may read (each bound on its own), those that exist."""
    if is_data_url(data_root):
        return []  # object storage: read with credentials, nothing to bind
    return [Path(data_root) / p for p in relative if (Path(data_root) / p).is_dir()]


def course_audience(course: Path) -> list[str] | None:
    """The roles ``course/course.yaml`` is for (None: every role, as the course model's
    default). Read here with YAML alone: the spawner sits below the course model's layer."""
    try:
        data = yaml.safe_load((course / "course.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return []  # not a course one can read: nothing of it is given
    audience = data.get("audience") if isinstance(data, dict) else None
    return [str(role) for role in audience] if isinstance(audience, list) else None


def course_material(curriculum: Path, role: str | None = None) -> list[Path]:
    """What of the curriculum users of ``role`` may read: the files of each course whose
    audience includes the role, but ``grader/`` (an allow-list of what is there, so a folder
    added later is not published by accident unless it is course material beside the
    notebooks). Files beside the courses (the authors' README) are for course authors, and a
    course for analysts only never reaches a trainee. ``role`` None: every course."""
    if not curriculum.is_dir():
        return []
    given: list[Path] = []
    for item in sorted(curriculum.iterdir()):
        if item.name.startswith(".") or not item.is_dir() or item.is_symlink():
            continue
        audience = course_audience(item)
        if role is not None and audience is not None and role not in audience:
            continue
        given += [
            p for p in sorted(item.iterdir()) if p.name != GRADER_DIR and not p.name.startswith(".")
        ]
    return given


class StatboxLocalSpawner(StatboxSpawnerMixin, SimpleLocalProcessSpawner):
    """A sandboxed local process per user, under the user's own uid, sized by role."""

    home_root = Unicode(config=True, help="Directory holding one home directory per user.")
    state_dir = Unicode(config=True, help="The stack's state directory (uids, catalogs).")
    cgroup_tree = Unicode(
        "statbox-servers", config=True, help="Control-group folder holding one group per server."
    )
    processes_limit = Integer(
        1024, config=True, help="Most processes and threads one server (with kernels) may run."
    )
    ready_poll_interval = Float(
        0.05, config=True, help="Seconds between checks that a starting server listens."
    )
    concurrent_starts = Integer(
        config=True,
        help="Servers starting at once; more wait their turn (default: CPU cores + 1).",
    )

    _record: ProcessRecord | None = None
    """The server's process as started: pid, start time, control group."""

    @default("concurrent_starts")
    def _default_concurrent_starts(self) -> int:
        return (os.cpu_count() or 1) + 1

    # One queue for the whole hub: starting a server is CPU-bound (imports), so starting
    # more at once than the machine has cores makes every one of them slower and the first
    # ready no sooner. Queued, the first users of a class rush are ready early.
    _start_slots: ClassVar[asyncio.Semaphore | None] = None

    def _slots(self) -> asyncio.Semaphore:
        if StatboxLocalSpawner._start_slots is None:
            StatboxLocalSpawner._start_slots = asyncio.Semaphore(self.concurrent_starts)
        return StatboxLocalSpawner._start_slots

    @default("home_dir")
    def _default_home_dir(self) -> str:
        # Usernames are held to names.USERNAME_PATTERN at login: safe as a path segment.
        return os.path.join(self.home_root, self.user.name)

    @property
    def _state(self) -> Path:
        return Path(self.state_dir) if self.state_dir else Path(self.home_root).parent

    def _uid(self) -> int | None:
        """The user's own uid (root only; else None: the hub's own account)."""
        if os.geteuid() != 0:
            return None
        return UidRegistry(registry_path(self._state)).uid(self.user.name)

    def _tree(self) -> CgroupTree | None:
        return CgroupTree.detect(self.cgroup_tree) if os.geteuid() == 0 else None

    def make_preexec_fn(self, name: str) -> None:
        # Everything a preexec function did is the sandbox's job now (see _sandbox).
        return None

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        env = super().user_env(env)
        env.update(self.statbox_environment(self._role_name))
        return env

    def _prepare(self, role_name: str) -> Sandbox:
        """Make the home and the user's catalog; return the sandbox the server runs in."""
        uid = self._uid()
        home = Path(self.home_dir)
        Path(self.home_root).mkdir(mode=0o755, parents=True, exist_ok=True)
        home.mkdir(mode=0o700, exist_ok=True)
        if uid is not None and home.stat().st_uid != uid:
            # First start under the user's own uid (a new home, one published into before,
            # or one from the days of a shared account): everything in it becomes theirs.
            for directory, dirnames, filenames in os.walk(home):
                os.chown(directory, uid, uid, follow_symlinks=False)
                for name in dirnames + filenames:
                    os.chown(os.path.join(directory, name), uid, uid, follow_symlinks=False)
        home.chmod(0o700)

        groups = sorted(group.name for group in self.user.groups)
        catalog = Path(self.catalog_path)
        catalogs = self._state / "catalogs"
        catalogs.mkdir(mode=0o711, exist_ok=True)
        own_catalog = catalogs / f"{self.user.name}.yaml"
        partial = own_catalog.with_suffix(".partial")
        entitled = entitlement(self.settings, role_name, groups, catalog)
        partial.write_text(entitled.catalog)
        partial.chmod(0o644)  # in a folder no user can list; bound only into this sandbox
        partial.replace(own_catalog)

        box = Sandbox(argv=[], uid=uid, network=True, inherit_env=True, cwd=home)
        box.bind_read_only(*interpreter_paths(), own_catalog)
        box.bind_read_only(*course_material(Path(self.curriculum_path), role_name))
        box.bind_read_only(*entitled_directories(self.data_root, entitled.data_paths))
        box.bind_read_write(home)
        box.tmpfs[Path("/tmp")] = TMP_SIZE
        box.tmpfs[Path("/dev/shm")] = TMP_SIZE  # multiprocessing's locks (Dask's nanny)

        tree = self._tree()
        if tree is None:
            self.log.warning("No writable cgroups: %s's server runs without caps", self.user.name)
        else:
            _, role = self.statbox_role
            left = tree.existing(self.user.name)
            if left is not None:  # a server that died by itself may have left processes
                left.kill()
            box.cgroup = tree.group(
                self.user.name,
                ResourceCaps(
                    memory=int(role.server.memory),
                    cpu=float(role.server.cpu),
                    processes=self.processes_limit,
                ),
            )
        return box

    async def start(self) -> tuple[str, int]:
        self._role_name = self.apply_role()
        loop = asyncio.get_running_loop()
        box = await loop.run_in_executor(None, self._prepare, self._role_name)
        spawner: Any = self  # Spawner.port is set by the hub (a traitlet mypy cannot type)
        if spawner.port == 0:
            spawner.port = random_port()
        port = int(spawner.port)
        env = self.get_env()
        env[CATALOG_ENV] = str(self._state / "catalogs" / f"{self.user.name}.yaml")
        box.argv = [*self.cmd, *self.get_args()]
        box.env = env
        self.log.info("Spawning %s's server as uid %s in its sandbox", self.user.name, box.uid)
        async with self._slots():
            self.proc = subprocess.Popen(
                box.command(), env=env, start_new_session=True, stdin=subprocess.DEVNULL
            )
            self.pid = self.proc.pid
            self._record = ProcessRecord.of(self.proc.pid, box.cgroup)
            ip = self.ip or "127.0.0.1"
            await wait_until_listening(
                ip,
                port,
                timeout=self.http_timeout,
                interval=self.ready_poll_interval,
                gone=lambda: self.proc is not None and self.proc.poll() is not None,
            )
        return ip, port

    async def stop(self, now: bool = False) -> None:
        """Stop the server gracefully (SIGTERM to all of it), then kill its whole group."""
        tree = self._tree()
        group = tree.existing(self.user.name) if tree is not None else None
        record = self._record
        if group is None and tree is None and record is not None and record.pid == self.pid:
            # No control group (not root): the sandbox's whole tree, not bwrap's process
            # alone (whose end would leave the server running).
            timeout = 0.0 if now else float(self.term_timeout)
            await asyncio.get_running_loop().run_in_executor(None, record.stop_tree, timeout)
            if self.proc is not None:
                self.proc.wait()
            return
        if group is None:
            await super().stop(now)
            return
        if not now:
            group.signal_all(signal.SIGTERM)
            deadline = time.monotonic() + self.term_timeout
            while time.monotonic() < deadline and group.pids():
                await asyncio.sleep(0.1)
        await asyncio.get_running_loop().run_in_executor(None, group.remove)
        if self.proc is not None:
            self.proc.wait()

    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = super().get_state()
        if self.pid and self._record is not None and self._record.pid == self.pid:
            state.update(self._record.state())
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        """Take back a stored server; if its pid is now held by anything else, say so (the
        server is then gone: :meth:`poll` says it stopped, nothing is signalled)."""
        super().load_state(state)
        self._record = ProcessRecord.from_state(state)
        record = self._record
        if record is not None and record.started is None and record.cgroup is None:
            # Stored by a hub before records (a bare pid): the server if it is in the user's
            # group (only processes started in a group are in it), else nothing to go by.
            tree = self._tree()
            group = tree.existing(self.user.name) if tree is not None else None
            if group is not None and record.pid in group.pids():
                self._record = ProcessRecord.of(record.pid, group)
        if self._record is not None:
            why = self._record.mismatch()
            if why is not None:
                self.log.warning(
                    "%s's server (pid %d) is gone: %s; that pid is never signalled",
                    self.user.name,
                    self._record.pid,
                    why,
                )

    def clear_state(self) -> None:
        super().clear_state()
        self._record = None

    async def _signal(self, sig: int) -> bool:
        """Upstream's (used by poll and stop), sending only to the recorded process: a pid
        whose holder's start time or control group is not the server's is gone."""
        record = self._record
        if record is None or record.pid != self.pid:
            record = ProcessRecord(int(self.pid))  # unknown: matches nothing
        return record.signal(sig)
