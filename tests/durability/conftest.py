"""Real `care-gateway serve` processes for the kill -9 tests: start, wait for /readyz, SIGKILL.

Each process logs to a file in the test's tmp dir (printed on failure); every process a test
starts is killed in the fixture's teardown, whatever happened.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from gateway.app import build_services
from gateway.auth import ClientRepository
from gateway.consent.agreements import build_agreement
from gateway.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID = "durability"
CLIENT_SECRET = "secret-durability-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class GatewayProcess:
    """One `care-gateway serve` subprocess on fixed ports; `start` again after `kill` to restart it."""

    env: dict[str, str]
    port: int
    mllp_port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    runs: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def fhir(self) -> str:
        return f"{self.base}/fhir"

    def start(self, timeout: float = 20.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.runs += 1
        cmd = [sys.executable, "-m", "gateway.cli", "serve", "--port", str(self.port)]
        cmd += ["--mllp-port", str(self.mllp_port)]
        with self.log.open("ab") as out:
            out.write(f"\n=== run {self.runs} ===\n".encode())
            out.flush()
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gateway not ready after {timeout}s:\n{self.tail()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flush, sockets torn down by the kernel."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Deployment:
    """A database (and optionally Redis) that one or more gateway processes share."""

    tmp: Path
    database_url: str
    redis_url: str | None = None
    processes: list[GatewayProcess] = field(default_factory=list)

    def settings(self, **extra: object) -> Settings:
        values: dict[str, object] = {
            "data_dir": self.tmp / "data",
            "database_url": self.database_url,
            "ward_list_push_enabled": False,
            "log_level": "WARNING",
            **extra,
        }
        return Settings(**values)  # type: ignore[arg-type]

    def prepare(self) -> None:
        """Migrate the database and register the test's API client (as an operator would, before serving)."""
        services = build_services(self.settings())
        try:
            ClientRepository(services.store.engine).add(
                client_id=CLIENT_ID,
                name=CLIENT_ID,
                organization="Organization/case-mgmt",
                role="case-manager",
                scopes=["system/*.cruds"],
                secret=CLIENT_SECRET,
            )
        finally:
            services.store.engine.dispose()

    def process(self, name: str) -> GatewayProcess:
        port, mllp_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        env |= {
            "GATEWAY_DATA_DIR": str(self.tmp / "data"),
            "GATEWAY_DATABASE_URL": self.database_url,
            "GATEWAY_BASE_URL": f"http://127.0.0.1:{port}",
            "GATEWAY_LOG_LEVEL": "WARNING",
            "GATEWAY_WARD_LIST_PUSH_ENABLED": "false",
        }
        if self.redis_url:
            env["GATEWAY_REDIS_URL"] = self.redis_url
        proc = GatewayProcess(env, port, mllp_port, self.tmp / f"gateway-{name}.log")
        self.processes.append(proc)
        return proc


def api_client(gw: GatewayProcess) -> httpx.Client:
    """A FHIR client with a fresh SMART token from this process."""
    token = httpx.post(
        f"{gw.base}/auth/token", data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, CLIENT_SECRET), timeout=10
    )
    assert token.status_code == 200, token.text
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    return httpx.Client(base_url=gw.fhir, headers=headers, timeout=30)


def share_everything(gw: GatewayProcess) -> None:
    """An information-sharing agreement so the test's client sees what the sources wrote (as in the e2e test)."""
    agreement = build_agreement(id="isa-durability", recipients=["Organization/case-mgmt"], purposes=["TREAT"])
    with api_client(gw) as fhir:
        response = fhir.put("/Basic/isa-durability", json=agreement)
        assert response.status_code in (200, 201), response.text


def total(client: httpx.Client, rtype: str, **params: str) -> int:
    response = client.get(f"/{rtype}", params={**params, "_summary": "count"})
    assert response.status_code == 200, response.text
    count: int = response.json()["total"]
    return count


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'gateway.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    dep = Deployment(tmp_path, url)
    dep.prepare()
    try:
        yield dep
    finally:
        for proc in dep.processes:
            proc.kill()


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    """On failure, show what the gateway processes logged."""
    if call.when != "call" or call.excinfo is None:
        return
    dep = getattr(item, "funcargs", {}).get("deployment")
    if isinstance(dep, Deployment):
        for proc in dep.processes:
            item.add_report_section("call", f"gateway log {proc.log.name}", proc.tail(60))
