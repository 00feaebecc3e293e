"""Kubernetes mode behind the :class:`statbox.modes.base.Deployment` interface."""

from __future__ import annotations

from statbox.modes.base import Deployment


class KubernetesDeployment(Deployment):
    name = "kubernetes"
