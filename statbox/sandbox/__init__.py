"""One sandbox for every untrusted process: user servers, local Dask clusters, graded kernels.

An allow-list, not a deny-list: the process starts in a new, empty root that holds only what
:class:`Sandbox` names (read-only system and interpreter directories, each entitled dataset
bound on its own, its own home or job folder read-write, size-capped private memory file
systems), in new PID, IPC, UTS and mount namespaces (and, when asked, a network namespace with
nothing in it), under the uid it is given, with no capability and no way to gain one, and
inside a control group holding its memory, CPU and process caps. Anything not named is
absent: the checkout around the interpreter, its ``.git``, other copies of the curriculum,
``/run`` and its sockets, other users' homes and processes.

The mechanism is Debian's ``bubblewrap`` (``bwrap``, what Flatpak uses), not hand-written
``unshare`` and mount juggling. One trap decides the shape of the command: bubblewrap started
as root with ``--uid N`` makes a user namespace that maps N onto **root outside**. So, as
root, bubblewrap builds the sandbox privileged (no user namespace: the uid outside is the uid
inside) and ``setpriv`` then drops to the sandbox's uid, clears groups, capabilities and the
bounding set, and sets ``no_new_privs`` before the untrusted program starts. Not as root,
bubblewrap runs unprivileged in a user namespace that maps the caller's own uid to itself.

Invariant: the process :meth:`Sandbox.command` starts sees no path it was not given, runs
under ``uid`` (as seen from outside the sandbox too) with an empty capability set, and every
process it starts is in its control group (when it has one), so :meth:`Cgroup.kill` ends all
of them, a detached ``setsid`` one included.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from statbox.errors import EnvironmentProblem
from statbox.sandbox.cgroups import Cgroup, CgroupTree, ResourceCaps

__all__ = [
    "Cgroup",
    "CgroupTree",
    "ResourceCaps",
    "Sandbox",
    "available",
    "interpreter_paths",
    "require",
]

SYSTEM_READ_ONLY: tuple[str, ...] = (
    "/usr",
    "/etc/alternatives",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/fonts",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/mime.types",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/hosts",
    "/etc/gai.conf",
    "/etc/protocols",
    "/etc/services",
    "/etc/passwd",
    "/etc/group",
    "/etc/gdal",
    "/etc/proj",
    "/usr/share/zoneinfo",
)
"""System paths every sandboxed process may read (those present here are bound): the
programs and libraries, certificate authorities, fonts, time zones and name lookup rules.
``/etc/passwd`` and ``/etc/group`` name accounts and hold no secret (shadow files are not
here). Nothing under ``/run``, ``/var``, ``/home``, ``/root``, ``/srv``, ``/opt`` or ``/tmp``."""

MERGED_USR_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
"""Top-level directories that merged-/usr systems (Debian 12) make symbolic links into /usr."""

BWRAP = "bwrap"
SETPRIV = "setpriv"


def available() -> str | None:
    """Why the sandbox cannot run here, or None when it can."""
    if shutil.which(BWRAP) is None:
        return "bubblewrap is not installed: apt-get install bubblewrap"
    if os.geteuid() == 0 and shutil.which(SETPRIV) is None:
        return "setpriv (util-linux) is not installed: apt-get install util-linux"
    return None


def require() -> None:
    """Raise :class:`EnvironmentProblem` when the sandbox cannot run here."""
    problem = available()
    if problem:
        raise EnvironmentProblem(f"the sandbox cannot run here: {problem}")


def interpreter_paths() -> list[Path]:
    """What a sandboxed Python program needs to run and that holds no secret: this
    environment (``sys.prefix``), the interpreter it was made from, and the statbox package
    itself (an editable install keeps it in the checkout, whose other folders stay out)."""
    statbox_package = Path(__file__).resolve().parent.parent
    paths = [Path(sys.prefix), Path(sys.base_prefix), statbox_package]
    resolved = []
    for path in paths:
        for candidate in (path, path.resolve()):
            if candidate not in resolved:
                resolved.append(candidate)
    return _outermost(resolved)


def _outermost(paths: Iterable[Path]) -> list[Path]:
    """``paths`` without those inside another one of them (a bind covers its inside)."""
    ordered = sorted(set(paths), key=lambda p: len(p.parts))
    kept: list[Path] = []
    for path in ordered:
        if not any(path.is_relative_to(outer) for outer in kept):
            kept.append(path)
    return kept


@dataclass
class Sandbox:
    """One untrusted process and exactly what it is given.

    Paths are absolute; a bind is ``(source, destination)`` (the same path inside unless
    said otherwise). Sizes are in bytes.
    """

    argv: list[str]
    uid: int | None = None
    """The uid (and gid) it runs as; None: the caller's own. Another uid needs root."""
    read_only: list[tuple[Path, Path]] = field(default_factory=list)
    read_write: list[tuple[Path, Path]] = field(default_factory=list)
    tmpfs: dict[Path, int] = field(default_factory=dict)
    """Private memory file systems: mount point -> size cap. Writes count against the
    control group's memory too."""
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path = Path("/")
    network: bool = False
    """Share the host's network (user servers and Dask clusters must reach the hub and the
    gateway); False: a network namespace holding nothing, not even a reachable loopback."""
    cgroup: Cgroup | None = None
    die_with_parent: bool = False
    """End the sandbox when the process that started it ends (graded kernels; user servers
    outlive a hub restart instead)."""
    hostname: str = "statbox"
    system: tuple[str, ...] = SYSTEM_READ_ONLY
    inherit_env: bool = False
    """Hand :attr:`env` over by inheritance (start :meth:`command` with ``env=sandbox.env``)
    rather than as ``--setenv`` arguments: a process's arguments are readable by every
    account on the host (``/proc/<pid>/cmdline``), its environment only by its own uid and
    root. User servers and Dask clusters pass their API tokens this way."""

    def bind_read_only(self, *paths: Path | str) -> Sandbox:
        self.read_only.extend((Path(p), Path(p)) for p in paths)
        return self

    def bind_read_write(self, *paths: Path | str) -> Sandbox:
        self.read_write.extend((Path(p), Path(p)) for p in paths)
        return self

    def bwrap_arguments(self) -> list[str]:
        """bubblewrap's arguments, in mount order (outer directories before inner ones)."""
        root = os.geteuid() == 0
        args = [
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--hostname",
            self.hostname,
            "--new-session",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
        ]
        if not root:
            args.append("--unshare-user")
        if not self.network:
            args.append("--unshare-net")
        if self.die_with_parent:
            args.append("--die-with-parent")
        for name in MERGED_USR_LINKS:
            top = Path("/") / name
            if top.is_symlink():
                args += ["--symlink", os.readlink(top), str(top)]
            elif top.is_dir():
                args += ["--ro-bind", str(top), str(top)]
        mounts: list[tuple[Path, list[str]]] = []
        for path in self.system:
            mounts.append((Path(path), ["--ro-bind-try", path, path]))
        for source, dest in self.read_only:
            mounts.append((dest, ["--ro-bind", str(source), str(dest)]))
        for source, dest in self.read_write:
            mounts.append((dest, ["--bind", str(source), str(dest)]))
        for dest, size in self.tmpfs.items():
            mounts.append(
                (dest, ["--size", str(int(size)), "--perms", "1777", "--tmpfs", str(dest)])
            )
        # The folders leading to each destination are made traversable (0755) whatever the
        # caller's umask: bubblewrap would make them with it, and a hub started with umask
        # 077 would give users a home they cannot reach.
        parents = {
            parent
            for destination, _ in mounts
            for parent in destination.parents
            if parent != Path("/") and not any(parent.is_relative_to(p) for p in self.system)
        }
        mounts += [(parent, ["--perms", "0755", "--dir", str(parent)]) for parent in parents]
        # A bind hides what was mounted under its destination before it: outer first.
        for _, mount in sorted(mounts, key=lambda m: (len(m[0].parts), m[1][0] != "--perms")):
            args += mount
        args += ["--chdir", str(self.cwd)]
        if not self.inherit_env:
            args.append("--clearenv")
            for key, value in self.env.items():
                args += ["--setenv", key, value]
        return args

    def command(self) -> list[str]:
        """The command that starts :attr:`argv` in this sandbox (run it as root to give it
        another uid or a control group)."""
        require()
        bwrap = shutil.which(BWRAP) or BWRAP
        inner = list(self.argv)
        if os.geteuid() == 0 and self.uid is not None:
            inner = [
                shutil.which(SETPRIV) or SETPRIV,
                f"--reuid={self.uid}",
                f"--regid={self.uid}",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--no-new-privs",
                "--",
                *inner,
            ]
        elif self.uid is not None and self.uid != os.geteuid():
            raise EnvironmentProblem(
                f"a sandbox under uid {self.uid} needs root (this is uid {os.geteuid()})"
            )
        command = [bwrap, *self.bwrap_arguments(), "--", *inner]
        if self.cgroup is not None:
            command = self.cgroup.entering(command)
        return command
