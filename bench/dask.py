"""How long an analyst waits for a Dask cluster: Statbox's gateway vs ``distributed.LocalCluster``.

A local Statbox stack (``statbox up``, as the tests start it) runs on free loopback ports; an
analyst signs in and starts her server. From one kernel on that server, rounds alternate:

* gateway: ``Gateway().new_cluster()``, scale to one worker, wait for it, compute one small
  result, shut the cluster down (as root, the scheduler and worker start in the analyst's
  sandbox, under her uid, in a control group of their own);
* local: ``LocalCluster(n_workers=1, threads_per_worker=1)`` in the kernel itself, the same
  computation, closed.

Both time "ask for a cluster" to "first result". Prints the medians of each and the ratio
(goal: gateway <= 2x local).

    python bench/dask.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the integration tests' stack and hub client

from tests.integration.conftest import PASSWORDS, SETTINGS, make_stack  # noqa: E402
from tests.integration.hubclient import HubUser  # noqa: E402

ROUND = textwrap.dedent(
    """
    import json, time, warnings
    warnings.simplefilter("ignore")
    from dask_gateway import Gateway
    from distributed import Client, LocalCluster
    times = {{"gateway": [], "local": []}}
    for _ in range({rounds}):
        started = time.perf_counter()
        cluster = Gateway().new_cluster()
        cluster.scale(1)
        client = cluster.get_client()
        client.wait_for_workers(1, timeout=120)
        assert client.submit(sum, range(1000)).result() == 499500
        times["gateway"].append(time.perf_counter() - started)
        client.close()
        cluster.shutdown()

        started = time.perf_counter()
        local = LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None)
        client = Client(local)
        assert client.submit(sum, range(1000)).result() == 499500
        times["local"].append(time.perf_counter() - started)
        client.close()
        local.close()
    print(json.dumps(times))
    """
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="statbox-bench-dask-"))
    folder.chmod(0o755)
    config = folder / "statbox.yaml"
    config.write_text(SETTINGS.format(repo=REPO))
    stack = make_stack(config)
    stack.start()
    try:
        ana = HubUser(stack.base_url, "ana")
        ana.login(PASSWORDS["user"])
        ana.create_token()
        ana.start_server()
        result = ana.run(ROUND.format(rounds=args.rounds), timeout=1800)
        if result.error:
            raise SystemExit(f"the benchmark failed in the kernel: {result.error}\n{result.stderr}")
        times = json.loads(result.stdout.strip().splitlines()[-1])
    finally:
        stack.stop(signal.SIGTERM)
        shutil.rmtree(folder, ignore_errors=True)
    gateway, local = (statistics.median(times[k]) for k in ("gateway", "local"))
    print(f"rounds: {args.rounds} (interleaved, one analyst's kernel, one worker)")
    for name in ("gateway", "local"):
        values = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"{name:8} median {statistics.median(times[name]):.2f} s  ({values})")
    print(f"ratio gateway / LocalCluster: {gateway / local:.2f}x (goal <= 2x)")


if __name__ == "__main__":
    main()
