"""A real Prometheus (Debian's package) scrapes ``aimass server --workers 2`` and a rule evaluates.

Every scrape must see both workers' requests (prometheus-client's multiprocess
mode), ``promtool check metrics`` must accept ``/metrics``, and a recording rule
over aimass's metrics must evaluate to the requests answered.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

import aimass
from conftest import free_port, start_server_process, worker_settings

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
pytestmark = [
    pytest.mark.skipif(
        PROMETHEUS is None or PROMTOOL is None, reason="apt-get install -y prometheus"
    ),
    pytest.mark.timeout(300),  # two worker processes and a Prometheus start on a busy machine
]
REQUESTS = 30
WAIT_S = 60.0


def _until(check: object, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what} did not happen within {WAIT_S:g} s"
        time.sleep(0.5)


def test_prometheus_scrapes_two_workers_and_a_rule_evaluates(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    settings = worker_settings(tmp_path, prediction_log_sample=1.0)
    server = start_server_process(settings)
    prometheus: subprocess.Popen[bytes] | None = None
    url = f"http://127.0.0.1:{settings.port}"
    try:
        x = np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32)
        with aimass.Client(url=url) as client:
            client.models.log("tiny", LogisticRegression().fit(x, x[:, 0] > 0), example=x[:2])
            client.deployments.create("tiny", version=1)
            client.deployments.wait_ready("tiny", timeout=60)
            _until(
                lambda: (
                    all(r.state == "ready" for r in client.deployments.get("tiny").replica_status)
                    and len(client.deployments.get("tiny").replica_status) == 2
                ),
                "both workers loading the model",
            )
        with httpx.Client(base_url=url) as http:
            for _ in range(REQUESTS):
                reply = http.post("/api/v1/deployments/tiny/predict", json={"inputs": [[1, 2, 3]]})
                assert reply.status_code == 200, reply.text
            # Whichever worker answers the scrape, it reports both workers' requests.
            for _ in range(6):
                text = http.get("/metrics").text
                line = next(
                    ln for ln in text.splitlines()
                    if ln.startswith("aimass_inference_requests_total{") and 'code="200"' in ln
                )  # fmt: skip
                assert float(line.rsplit(" ", 1)[1]) == REQUESTS
        checked = subprocess.run(
            [PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60
        )
        problems = (checked.stdout + checked.stderr).decode().strip()
        assert checked.returncode == 0 and problems == "", problems

        rules = tmp_path / "rules.yml"
        rules.write_text(
            "groups:\n"
            "  - name: aimass\n"
            "    interval: 1s\n"
            "    rules:\n"
            "      - record: aimass:inference_requests:sum\n"
            "        expr: sum(aimass_inference_requests_total)\n"
        )
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files: ['{rules}']\n"
            "scrape_configs:\n"
            "  - job_name: aimass\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{settings.port}']}}]\n"
        )
        port = free_port()
        prometheus = subprocess.Popen(
            [
                str(PROMETHEUS), f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

        def recorded() -> bool:
            try:
                answer = httpx.get(
                    f"http://127.0.0.1:{port}/api/v1/query",
                    params={"query": "aimass:inference_requests:sum"},
                ).json()
            except httpx.HTTPError:
                return False
            result = answer.get("data", {}).get("result", [])
            return bool(result) and float(result[0]["value"][1]) == REQUESTS

        _until(recorded, "the recording rule evaluating to the requests answered")
        targets = httpx.get(f"http://127.0.0.1:{port}/api/v1/targets").json()
        assert targets["data"]["activeTargets"][0]["health"] == "up"
    finally:
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(timeout=30)
        server.terminate()
        server.wait(timeout=60)
