"""A small client for a running hub, as a browser and a notebook would use it.

- :class:`HubUser` logs in through the real login form (with its XSRF token), starts the
  user's server, gets an API token, and runs code in a real kernel over the server's
  websocket API.
- :class:`StatboxProcess` runs ``statbox up`` as a child process and stops it by signal.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests
import websocket


class LoginRefused(Exception):
    pass


@dataclass
class KernelResult:
    stdout: str
    stderr: str
    error: str | None

    def json(self) -> dict:
        """The last line of stdout, as JSON (the probes print one JSON line)."""
        return json.loads(self.stdout.strip().splitlines()[-1])


@dataclass
class HubUser:
    base_url: str
    name: str
    session: requests.Session = field(default_factory=requests.Session)
    token: str | None = None

    def login(self, password: str) -> requests.Response:
        """Log in through the form, as a browser does; raise LoginRefused on refusal."""
        page = self.session.get(f"{self.base_url}/hub/login", timeout=30)
        page.raise_for_status()
        xsrf = self.session.cookies.get("_xsrf")
        response = self.session.post(
            f"{self.base_url}/hub/login",
            data={"username": self.name, "password": password, "_xsrf": xsrf},
            allow_redirects=False,
            timeout=60,
        )
        if response.status_code != 302:
            raise LoginRefused(f"{response.status_code}: {response.text[:200]}")
        return response

    def _xsrf_headers(self) -> dict[str, str]:
        return {"X-XSRFToken": self.session.cookies.get("_xsrf", path="/hub/") or ""}

    def create_token(self) -> str:
        """An API token of this user, made through the hub API with the session cookie."""
        response = self.session.post(
            f"{self.base_url}/hub/api/users/{self.name}/tokens",
            json={"note": "statbox tests", "expires_in": 3600},
            headers=self._xsrf_headers(),
            timeout=30,
        )
        response.raise_for_status()
        self.token = response.json()["token"]
        return self.token

    def api(self, method: str, path: str, scheme: str = "token", **kwargs) -> requests.Response:
        """A request with this user's token (to the hub, a server or a service).

        Dask Gateway's JupyterHub authenticator wants the scheme ``jupyterhub``.
        """
        headers = {"Authorization": f"{scheme} {self.token}", **kwargs.pop("headers", {})}
        return requests.request(
            method, f"{self.base_url}{path}", headers=headers, timeout=60, **kwargs
        )

    def start_server(self, timeout: float = 120) -> float:
        """Start the user's server (if not running) and wait until it is ready; seconds taken."""
        started = time.monotonic()
        response = self.api("POST", f"/hub/api/users/{self.name}/server")
        assert response.status_code in (201, 202, 400), response.text
        while time.monotonic() - started < timeout:
            model = self.api("GET", f"/hub/api/users/{self.name}").json()
            server = model.get("servers", {}).get("")
            if server and server.get("ready"):
                return time.monotonic() - started
            time.sleep(0.2)
        raise TimeoutError(f"{self.name}'s server not ready after {timeout} s")

    def run(self, code: str, timeout: float = 240) -> KernelResult:
        """Run ``code`` in a new kernel on this user's server, over the websocket API."""
        kernel = self.api("POST", f"/user/{self.name}/api/kernels", json={"name": "python3"})
        assert kernel.status_code == 201, kernel.text
        kernel_id = kernel.json()["id"]
        try:
            return self._execute(kernel_id, code, timeout)
        finally:
            self.api("DELETE", f"/user/{self.name}/api/kernels/{kernel_id}")

    def _execute(self, kernel_id: str, code: str, timeout: float) -> KernelResult:
        url = self.base_url.replace("http", "ws", 1)
        ws = websocket.create_connection(
            f"{url}/user/{self.name}/api/kernels/{kernel_id}/channels",
            header=[f"Authorization: token {self.token}"],
            timeout=timeout,
        )
        msg_id = uuid.uuid4().hex
        ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "username": self.name,
                        "session": uuid.uuid4().hex,
                        "msg_type": "execute_request",
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": False,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": True,
                    },
                    "channel": "shell",
                    "buffers": [],
                }
            )
        )
        stdout, stderr, error = [], [], None
        replied = idle = False
        deadline = time.monotonic() + timeout
        try:
            while not (replied and idle):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no reply within {timeout} s; stdout so far: {stdout}")
                msg = json.loads(ws.recv())
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = msg["msg_type"], msg["content"]
                if kind == "stream":
                    (stdout if content["name"] == "stdout" else stderr).append(content["text"])
                elif kind == "error":
                    error = f"{content['ename']}: {content['evalue']}"
                elif kind == "execute_reply":
                    replied = True
                elif kind == "status" and content["execution_state"] == "idle":
                    idle = True
        finally:
            ws.close()
        return KernelResult("".join(stdout), "".join(stderr), error)


class StatboxProcess:
    """``statbox up`` as a child process in its own session, stopped by a signal."""

    def __init__(
        self,
        config: Path,
        port: int,
        state_dir: Path,
        env: dict[str, str],
        python: str = sys.executable,
        command: str | None = None,
        cwd: Path | None = None,
    ):
        """``command``: a ``statbox`` script to run (else ``python -m statbox.cli``);
        ``cwd``: where it runs (else here)."""
        self.config, self.port, self.state_dir = config, port, state_dir
        self.python = python
        self.command = [command] if command else [python, "-m", "statbox.cli"]
        self.cwd = cwd
        self.base_url = f"http://127.0.0.1:{port}"
        self.log = state_dir.parent / f"statbox-up-{port}.log"
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120) -> None:
        out = open(self.log, "ab")  # noqa: SIM115 (the child holds it; closed at exit)
        self.proc = subprocess.Popen(
            [
                *self.command,
                "up",
                "--config",
                str(self.config),
                "--port",
                str(self.port),
                "--state-dir",
                str(self.state_dir),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            cwd=self.cwd,
            start_new_session=True,
        )
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"statbox up exited {self.proc.returncode}:\n{self.output()}")
            if "Statbox is running at" in self.output():
                return
            time.sleep(0.2)
        raise TimeoutError(f"statbox up not ready in {timeout} s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def process_tree(self) -> list[psutil.Process]:
        """statbox up and everything it started, as of now."""
        assert self.proc is not None
        parent = psutil.Process(self.proc.pid)
        return [parent, *parent.children(recursive=True)]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal statbox up and wait for it; returns its exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode
