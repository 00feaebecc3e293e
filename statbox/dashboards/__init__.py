"""The front of Dask Gateway: the one door users have to the gateway's HTTP side.

Dask Gateway's own HTTP proxy serves every cluster's dashboard to anyone who knows the
cluster's name. This package puts a JupyterHub-managed service in front of it
(:mod:`statbox.dashboards.front`) and keeps users away from what it guards
(:mod:`statbox.dashboards.firewall`, :mod:`statbox.dashboards.scheduler`).

Invariant: a cluster's pages (``<prefix>/clusters/<name>/...``, HTTP and websockets) reach
only a requester whom the gateway itself lets view that cluster (its owner, or an admin);
the gateway's API passes through unchanged, because the gateway authenticates it.
"""
