"""Start one graded kernel inside its sandbox: the last step before trainee code runs.

Run by the grader as ``python -I -S _sandbox.py SPEC.json`` (standard library only, no
site-packages, nothing from the working directory on ``sys.path``), either directly (the
``rlimits`` backend) or as root inside fresh network, mount and PID namespaces made by
``unshare`` (the ``sandbox`` backend, see :mod:`statbox.certify.isolation`). In order it:

1. covers every path the spec hides (grader files, submissions, secrets, ``/tmp`` ...) with an
   empty tmpfs (a directory) or ``/dev/null`` (a file), in this mount namespace only;
2. makes the paths the spec reveals (the job's directory, the data root) visible again at the
   same absolute path, read-only where asked: the grader and the kernel then agree on the IPC
   socket paths although they live in different mount namespaces;
3. mounts a size-limited tmpfs as the working directory and copies the trainee's inputs in;
4. joins the slot's cgroups (memory and pids caps) when the grader made them, sets the
   resource limits, drops every privilege (supplementary groups, gid, uid, and
   ``no_new_privs`` so no set-uid program can win them back) and execs the kernel.

Invariant: when this script execs the kernel, nothing the spec hides is reachable and the
process runs as the spec's unprivileged uid. Any failure before that exits with status 70
and one line on stderr (the kernel's log), and no trainee code has run.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import shutil
import sys

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
PR_SET_NO_NEW_PRIVS = 38
FAILED = 70

RLIMITS = {
    "as": resource.RLIMIT_AS,
    "nproc": resource.RLIMIT_NPROC,
    "fsize": resource.RLIMIT_FSIZE,
    "cpu": resource.RLIMIT_CPU,
    "nofile": resource.RLIMIT_NOFILE,
    "core": resource.RLIMIT_CORE,
}

_libc = ctypes.CDLL(None, use_errno=True)


def mount(source: str, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    result = _libc.mount(
        source.encode(), target.encode(), fstype.encode() if fstype else None, flags, data.encode()
    )
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {source} on {target}: {os.strerror(errno)}")


def hide(entry: dict) -> None:
    path = entry["path"]
    if not os.path.lexists(path):
        return
    if os.path.isdir(path) and not os.path.islink(path):
        options = f"size={entry.get('size', 65536)},mode={entry.get('mode', '755')}"
        mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, options)
    elif os.path.isfile(path):
        mount("/dev/null", path, None, MS_BIND)


def reveal(path: str, fd: int, readonly: bool) -> None:
    """Bind the directory held open as ``fd`` at ``path`` again (hiding covered it)."""
    try:
        current = os.stat(path)
        original = os.fstat(fd)
        if (current.st_dev, current.st_ino) == (original.st_dev, original.st_ino) and not readonly:
            return
    except FileNotFoundError:
        os.makedirs(path, exist_ok=True)
    mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
    if readonly:
        mount("none", path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_REC)


def prepare_workdir(spec: dict) -> None:
    workdir = spec["workdir"]
    uid, gid = spec.get("uid"), spec.get("gid")
    if spec.get("namespaces"):
        mount(
            "tmpfs",
            workdir,
            "tmpfs",
            MS_NOSUID | MS_NODEV,
            f"size={spec['workdir_size']},mode=700,uid={uid},gid={gid}",
        )
    inputs = spec.get("inputs")
    if inputs and os.path.isdir(inputs):
        for name in os.listdir(inputs):
            source = os.path.join(inputs, name)
            if os.path.isfile(source) and not os.path.islink(source):
                target = os.path.join(workdir, name)
                shutil.copyfile(source, target)
                if uid is not None and gid is not None:
                    os.chown(target, uid, gid)


def set_limits(limits: dict) -> None:
    for name, value in limits.items():
        resource.setrlimit(RLIMITS[name], (value, value))


def drop_privileges(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise OSError("could not drop privileges")


def main(spec_path: str) -> None:
    with open(spec_path) as handle:
        spec = json.load(handle)
    if spec.get("namespaces"):
        fds = [
            (r["path"], os.open(r["path"], os.O_PATH), r.get("readonly", False))
            for r in spec["reveal"]
        ]
        for entry in sorted(spec["hide"], key=lambda e: len(e["path"])):
            hide(entry)
        for path, fd, readonly in fds:
            reveal(path, fd, readonly)
            os.close(fd)
    prepare_workdir(spec)
    for procs in spec.get("cgroups", []):  # children inherit the groups: all are counted
        with open(procs, "w") as handle:
            handle.write(str(os.getpid()))
    set_limits(spec["limits"])
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if spec.get("uid") is not None:
        drop_privileges(spec["uid"], spec["gid"])
    os.chdir(spec["workdir"])
    argv = spec["argv"]
    os.execve(argv[0], argv, spec["env"])


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except Exception as exc:  # one line for the grader, never trainee-facing internals
        print(f"statbox sandbox: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(FAILED)
