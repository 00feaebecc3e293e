"""Local mode: each user's server is a process on this machine.

For trying Statbox out and for small classes on one machine. Every server runs under one
account (``run_as`` when the hub is root, else the hub's own), so users are not isolated from
each other's files; the docker and kubernetes modes isolate them.

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
import pwd
import shutil
from typing import Any, ClassVar

from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import Float, Integer, Unicode, default

from statbox.spawners.base import StatboxSpawnerMixin, wait_until_listening


class StatboxLocalSpawner(StatboxSpawnerMixin, SimpleLocalProcessSpawner):
    """A local process per user, home under the state directory, sized and equipped by role."""

    home_root = Unicode(config=True, help="Directory holding one home directory per user.")
    run_as = Unicode(
        "",
        config=True,
        help="Account that runs servers when the hub runs as root; empty: the hub's account.",
    )
    ready_poll_interval = Float(
        0.05, config=True, help="Seconds between checks that a starting server listens."
    )
    concurrent_starts = Integer(
        config=True,
        help="Servers starting at once; more wait their turn (default: CPU cores + 1).",
    )

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

    def _account(self) -> pwd.struct_passwd | None:
        return pwd.getpwnam(self.run_as) if self.run_as else None

    def _prepare_home(self) -> None:
        account = self._account()
        os.makedirs(self.home_root, mode=0o755, exist_ok=True)
        if not os.path.isdir(self.home_dir):
            os.mkdir(self.home_dir, mode=0o755)
        if account is not None:
            shutil.chown(self.home_dir, account.pw_uid, account.pw_gid)

    def make_preexec_fn(self, name: str) -> None:
        # Popen's user/group/cwd arguments replace upstream's preexec function (unsafe in a
        # threaded process); see start().
        return None

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        env = super().user_env(env)
        env.update(self.statbox_environment(self._role_name))
        return env

    async def start(self) -> tuple[str, int]:
        self._role_name = self.apply_role()
        await asyncio.get_running_loop().run_in_executor(None, self._prepare_home)
        account = self._account()
        kwargs: dict[str, Any] = {"cwd": self.home_dir}
        if account is not None:
            kwargs.update(user=account.pw_uid, group=account.pw_gid, extra_groups=[])
        else:
            self.log.info("Servers run as the hub's own account (uid %d)", os.getuid())
        self.popen_kwargs = kwargs
        async with self._slots():
            ip, port = await super().start()
            await self._wait_until_listening(ip, port)
        return ip, port

    async def _wait_until_listening(self, ip: str, port: int) -> None:
        """Return once ``ip:port`` accepts a connection, the process exits, or time runs out."""
        await wait_until_listening(
            ip,
            port,
            timeout=self.http_timeout,
            interval=self.ready_poll_interval,
            gone=lambda: self.proc is not None and self.proc.poll() is not None,
        )
