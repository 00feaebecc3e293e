"""Kubernetes mode: deployed with the Helm chart (helm/statbox), not by ``statbox up``."""

from __future__ import annotations

from statbox.modes import Deployment


class KubernetesDeployment(Deployment):
    name = "kubernetes"
