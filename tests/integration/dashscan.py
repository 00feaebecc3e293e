"""An attack run from inside a user's code: every Dask page this network namespace serves
to whoever asks.

A cluster's pages (the scheduler's dashboard, a worker's ``/info`` pages, the gateway's
``/clusters/<name>/...`` routes) must reach only their owner, through the hub. The probe
does not guess where they might be: it lists every listening TCP socket of its network
namespace from ``/proc/net/tcp`` and ``tcp6`` (readable by anyone), asks each for those
pages without credentials, and reports each that answers with a Dask page. Used from a
user's kernel in local mode and from a user's Dask worker in the docker gateway's container.
"""

from __future__ import annotations

PROBE = r"""
import http.client, ipaddress, socket

def listening():
    found = set()
    for table, family in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 6)):
        try:
            with open(table) as handle:
                lines = handle.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            if state != "0A":  # LISTEN
                continue
            address, port = local.split(":")
            raw = bytes.fromhex(address)
            if family == 4:
                host = str(ipaddress.IPv4Address(raw[::-1]))
            else:
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                ip = ipaddress.IPv6Address(words)
                host = str(ip.ipv4_mapped or ip)
            if host in ("0.0.0.0", "::"):
                host = "127.0.0.1"
            found.add((host, int(port, 16)))
    return sorted(found)

# "dask" when the path answers with a Dask page, "http" when it answers otherwise, None
# when nothing HTTP answers (a ZeroMQ or Dask comm port waits for its own greeting)
def dask_page(host, port, path):
    conn = http.client.HTTPConnection(host, port, timeout=3)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read(200000).decode(errors="replace").lower()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    if response.status == 200 and ("bokeh" in body or "dask" in body):
        return "dask"
    return "http"

def pages_of(listener):
    host, port = listener
    found = []
    for path in PATHS:
        answer = dask_page(host, port, path)
        if answer is None and path == PATHS[0]:
            break  # no HTTP server here: every path would wait its timeout in vain
        if answer == "dask":
            found.append(f"{host}:{port}{path}")
    return found

PATHS = ["/status", "/info/main/workers.html", "/info/main/logs.html"]
PATHS += [f"/clusters/{name}/status" for name in CLUSTERS]
PATHS += [f"{prefix}/clusters/{name}/status" for name in CLUSTERS for prefix in PREFIXES]
# every listener at once (a machine running a class has hundreds: kernels, workers, comms)
from concurrent.futures import ThreadPoolExecutor
with ThreadPoolExecutor(16) as pool:
    answered = [page for pages in pool.map(pages_of, listening()) for page in pages]
"""


def probe(clusters: list[str], prefixes: list[str]) -> str:
    """The probe's code, asking also for these clusters' gateway routes (under each of
    ``prefixes``): it leaves the list of what answered in ``answered``."""
    return f"CLUSTERS = {clusters!r}\nPREFIXES = {prefixes!r}\n" + PROBE
