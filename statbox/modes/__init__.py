"""Deployment modes: one folder each, behind one small interface, chosen by name.

``local`` runs the stack as processes on this machine, ``docker`` as containers on one
engine, ``kubernetes`` is deployed with the Helm chart. Every mode-specific step a command
takes goes through :class:`statbox.modes.base.Deployment`; a command never branches on the
mode itself.

As dask-gateway resolves its backends, a mode is imported only when it is chosen
(:data:`statbox.modes.base.MODES` names them), so a local-mode command never imports the
Docker SDK, and the modes never import each other.
"""
