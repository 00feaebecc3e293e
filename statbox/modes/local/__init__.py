"""Local mode: the hub, the proxy, Dask Gateway and every user server as processes here."""
