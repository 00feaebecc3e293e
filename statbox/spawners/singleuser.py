"""A user's server: ``jupyterhub-singleuser``, with the course material put in the home first.

Run as ``python -m statbox.spawners.singleuser [jupyterhub-singleuser arguments]``, as the user.

Three things happen before Jupyter starts:

* Course material from ``$STATBOX_CURRICULUM`` is copied into ``~/courses``, adding what is
  missing and never overwriting a file the user has (their work survives a course update).
  It runs here, as the user, so a home the user controls cannot steer a privileged copy.
* ``rfc3987_syntax`` is made lazy. jsonschema imports it at start-up to offer the ``iri``
  format check, and its import builds a dozen Earley parsers: about 1 s of CPU in every
  server start, spent before Jupyter can listen. Deferred, the check still works: the real
  module loads on the first ``iri`` validation.
* JupyterLab is imported with Node.js hidden, so it does not start Node.js to ask yarn for
  an npm registry it will not use (see :func:`import_jupyterlab_without_asking_node`).

bench/spawn.py measures the effect of both.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

from statbox.i18n import LANGUAGE_ENV, SOURCE_LANGUAGE, lab_overrides, supported

DEFERRED_MODULE = "rfc3987_syntax"


def _load_deferred() -> types.ModuleType:
    """Import the real module in place of the stand-in (once)."""
    current = sys.modules.get(DEFERRED_MODULE)
    if current is not None and not getattr(current, "__statbox_stand_in__", False):
        return current
    spec = importlib.machinery.PathFinder.find_spec(DEFERRED_MODULE)
    if spec is None or spec.loader is None:
        raise ImportError(f"No module named {DEFERRED_MODULE!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[DEFERRED_MODULE] = module
    spec.loader.exec_module(module)
    return module


def _is_valid_syntax(term: str, value: str) -> bool:
    return bool(_load_deferred().is_valid_syntax(term, value))


def _forward_attribute(name: str) -> Any:
    # The import system probes dunders such as __path__ on every `from ... import`: answering
    # those from the real module would load it at once and defeat the deferral.
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(_load_deferred(), name)


class _StandInLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = types.ModuleType(spec.name)
        module.__statbox_stand_in__ = True  # type: ignore[attr-defined]
        module.is_valid_syntax = _is_valid_syntax  # type: ignore[attr-defined]
        module.__getattr__ = _forward_attribute  # type: ignore[method-assign]
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class _DeferringFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != DEFERRED_MODULE or importlib.machinery.PathFinder.find_spec(name) is None:
            return None
        return importlib.util.spec_from_loader(name, _StandInLoader())


def defer_slow_imports() -> None:
    """Install the stand-in for ``rfc3987_syntax`` (idempotent)."""
    if not any(isinstance(finder, _DeferringFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _DeferringFinder())


def import_jupyterlab_without_asking_node() -> None:
    """Import JupyterLab's server extension with Node.js out of sight, once.

    At import, ``jupyterlab.labapp`` computes its version info with default options, whose
    npm registry default comes from running ``node yarn.js config`` when Node.js is on PATH:
    a Node.js process per server start (0.3 s, and more under load). The registry matters
    only for building extensions, which a user server does not do; with Node.js not found
    JupyterLab uses its default registry. PATH is restored at once: terminals, kernels and
    anything later that wants Node.js find it.
    """
    path = os.environ.get("PATH", "")
    without_node = [
        d
        for d in path.split(os.pathsep)
        if d and not any(os.access(os.path.join(d, name), os.X_OK) for name in ("node", "nodejs"))
    ]
    # An empty PATH would make JupyterLab fall back to os.defpath, which may hold node.
    os.environ["PATH"] = os.pathsep.join(without_node or [os.path.dirname(sys.executable)])
    try:
        import jupyterlab.labapp  # noqa: F401
    except ImportError:
        pass  # a server without JupyterLab starts anyway
    finally:
        os.environ["PATH"] = path


LSP_NODE_ROOTS = "--LanguageServerManager.node_roots"


def language_server_node_roots(home: Path) -> list[str]:
    """Where jupyter_lsp looks for Node.js language servers by default, found without Node.js.

    Its default list ends with npm's global prefix, which it learns by running ``npm prefix
    -g``: a Node.js process in every server start, in the seconds when the hub first reaches
    the server (0.2 s of CPU, more under load). npm's global prefix is the folder Node.js is
    installed in unless ``npm_config_prefix`` says otherwise; the rest is jupyter_lsp's own
    list (the server's folder, JupyterLab's staging folder, this environment).
    """
    roots = [home]
    try:
        from jupyterlab import commands

        roots.append(Path(commands.get_app_dir()) / "staging")
    except ImportError:
        pass
    roots += [Path(sys.prefix) / "lib", Path(sys.prefix)]
    configured = os.environ.get("npm_config_prefix") or os.environ.get("NPM_CONFIG_PREFIX")  # noqa: SIM112 (npm reads both spellings)
    node = shutil.which("node") or shutil.which("nodejs")
    prefix = (
        Path(configured) if configured else Path(node).resolve().parent.parent if node else None
    )
    if prefix is not None:
        roots += [prefix / "lib", prefix]
    return [str(root) for root in roots]


def lab_language_arguments(language: str | None) -> list[str]:
    """JupyterLab's default language, as the hub's ``hub.language`` says, or nothing.

    The overrides go in a folder of the server's own (JupyterLab's app settings folder, which
    a pip-installed JupyterLab does not otherwise have), so the shared environment is never
    written to.
    """
    known = supported(language)
    if known in (None, SOURCE_LANGUAGE):
        return []
    folder = Path(tempfile.mkdtemp(prefix="statbox-lab-settings-"))
    (folder / "overrides.json").write_text(json.dumps(lab_overrides(known)))
    return [f"--LabApp.app_settings_dir={folder}"]


def main() -> None:
    # No course is copied here: courses reach a home when published and opened
    # (statbox.classroom), so the publisher knows every file it wrote and each trainee's
    # variant lands in the notebook they open.
    defer_slow_imports()
    import_jupyterlab_without_asking_node()
    from jupyterhub.singleuser import main as singleuser_main

    sys.argv[0] = "jupyterhub-singleuser"
    if not any(arg.startswith(LSP_NODE_ROOTS) for arg in sys.argv):
        sys.argv += [f"{LSP_NODE_ROOTS}={root}" for root in language_server_node_roots(Path.cwd())]
    if not any(arg.startswith("--LabApp.app_settings_dir") for arg in sys.argv):
        sys.argv += lab_language_arguments(os.environ.get(LANGUAGE_ENV))
    sys.exit(singleuser_main())


if __name__ == "__main__":
    main()
