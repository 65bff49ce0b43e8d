"""Run the real Prometheus server on loopback against test targets, and query it.

Uses the `prometheus` binary on PATH (Debian's /usr/bin/prometheus; `apt-get install
prometheus`). Tests skip when `PROMETHEUS` is None. Each server gets an ephemeral port, its
own TSDB directory under the test's tmp_path and a generated prometheus.yml, and is always
terminated on exit.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

PROMETHEUS = shutil.which("prometheus")
READY_TIMEOUT_S = 30.0


class PrometheusError(RuntimeError):
    pass


class PrometheusServer:
    def __init__(self, process: subprocess.Popen, port: int, log_path: Path):
        self.process = process
        self.port = port
        self.log_path = log_path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result: [{"metric": {...}, "value": [ts, "1"]}, ...]."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                payload = json.load(response)
        except urllib.error.HTTPError as exc:  # a bad expression answers 400 with a reason
            raise PrometheusError(f"{expr}: HTTP {exc.code}: {exc.read()[:500]!r}") from None
        if payload.get("status") != "success":
            raise PrometheusError(f"{expr}: {payload}")
        data = payload["data"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def wait_for(
        self,
        expr: str,
        predicate: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 20.0,
        interval: float = 0.25,
    ) -> list[dict[str, Any]]:
        """Poll `expr` until `predicate(result)` holds; the last result goes in the error."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if predicate(result):
                return result
            if time.monotonic() > deadline:
                raise PrometheusError(
                    f"{expr} did not match within {timeout:g}s; last result: {result}\n"
                    f"{self.log_tail()}"
                )
            time.sleep(interval)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def value(result: list[dict[str, Any]]) -> float | None:
    """The single sample's value of an instant query, or None when it returned nothing."""
    if not result:
        return None
    if len(result) > 1:
        raise PrometheusError(f"expected one series, got {len(result)}: {result}")
    return float(result[0]["value"][1])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(
    path: Path, targets: list[str], scrape_interval: str, job: str, metrics_path: str
) -> None:
    # JSON is YAML: no YAML writer needed, and quoting is never a question.
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": metrics_path,
                # The default timeout (10s) may not exceed a shorter interval.
                "scrape_interval": scrape_interval,
                "scrape_timeout": scrape_interval,
                "static_configs": [{"targets": list(targets)}],
            }
        ],
    }
    path.write_text(json.dumps(config, indent=2))


@contextlib.contextmanager
def start_prometheus(
    tmp_path: Path,
    targets: list[str],
    scrape_interval: str = "1s",
    *,
    job: str = "plano",
    metrics_path: str = "/metrics",
) -> Iterator[PrometheusServer]:
    """A ready Prometheus scraping `targets` (host:port); stopped when the block ends."""
    if PROMETHEUS is None:
        raise PrometheusError("prometheus not installed (apt-get install prometheus)")
    root = tmp_path / "prometheus"
    root.mkdir(parents=True, exist_ok=True)
    config = root / "prometheus.yml"
    write_config(config, targets, scrape_interval, job, metrics_path)
    server: PrometheusServer | None = None
    try:
        # The port is free when picked but not reserved: another process may take it first.
        for _ in range(3):
            server = _launch(config, root)
            if _wait_ready(server):
                break
            server.stop()
            if "address already in use" not in server.log_tail().lower():
                raise PrometheusError(f"prometheus did not become ready:\n{server.log_tail()}")
        else:
            raise PrometheusError("prometheus found no free port in 3 tries")
        yield server
    finally:
        if server is not None:
            server.stop()


def _launch(config: Path, root: Path) -> PrometheusServer:
    port = free_port()
    log_path = root / f"prometheus-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={config}",
                # One TSDB per launch: a failed start may leave the previous one locked.
                f"--storage.tsdb.path={root / f'data-{port}'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return PrometheusServer(process, port, log_path)


def _wait_ready(server: PrometheusServer) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass  # not listening yet, or 503 while the TSDB opens
        time.sleep(0.1)
    return False
