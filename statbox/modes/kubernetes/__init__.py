"""Kubernetes mode: deployed with the Helm chart (helm/statbox), not by ``statbox up``."""
