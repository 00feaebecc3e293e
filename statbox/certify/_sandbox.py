"""Start one graded kernel: the last step before trainee code runs.

Run by the grader as ``python -I -S _sandbox.py SPEC`` (standard library only, no
site-packages, nothing from the working directory on ``sys.path``; ``SPEC`` is the spec as
JSON text, so nothing is read from a file the kernel's uid could not read). It runs already
inside the bubblewrap sandbox and under the kernel's uid (the ``sandbox`` backend), or
directly (the ``rlimits`` backend). In order it:

1. copies the trainee's inputs into the working directory (a size-capped memory file
   system in the sandbox);
2. sets the resource limits (lowering a limit needs no privilege);
3. execs the kernel, with the spec's environment when it gives one (the sandbox sets the
   environment itself).

Invariant: any failure before the exec exits with status 70 and one line on stderr (the
kernel's log), and no trainee code has run.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys

FAILED = 70

RLIMITS = {
    "as": resource.RLIMIT_AS,
    "data": resource.RLIMIT_DATA,
    "nproc": resource.RLIMIT_NPROC,
    "fsize": resource.RLIMIT_FSIZE,
    "cpu": resource.RLIMIT_CPU,
    "nofile": resource.RLIMIT_NOFILE,
    "core": resource.RLIMIT_CORE,
}


def copy_inputs(inputs: str | None, workdir: str) -> None:
    if not inputs or not os.path.isdir(inputs):
        return
    for name in os.listdir(inputs):
        source = os.path.join(inputs, name)
        if os.path.isfile(source) and not os.path.islink(source):
            shutil.copyfile(source, os.path.join(workdir, name))


def set_limits(limits: dict) -> None:
    for name, value in limits.items():
        _soft, hard = resource.getrlimit(RLIMITS[name])
        # never raise a limit (an unprivileged process cannot), only lower it
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(RLIMITS[name], (value, value))


def main(text: str) -> None:
    spec = json.loads(text)
    copy_inputs(spec.get("inputs"), spec["workdir"])
    set_limits(spec["limits"])
    os.chdir(spec["workdir"])
    argv = spec["argv"]
    if spec.get("env") is None:
        os.execv(argv[0], argv)
    os.execve(argv[0], argv, spec["env"])


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except Exception as exc:  # one line for the grader, never trainee-facing internals
        print(f"statbox sandbox: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(FAILED)
