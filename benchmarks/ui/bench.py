"""The web UI at scale: what the jobs page, the list APIs and the metric chart cost.

Seeds an installation with many jobs, model versions and one job's metric points
(straight into the database: the UI reads the API, how the rows got there does not
matter), serves it, and prints each figure beside the same figure with 100 rows.
Not a test: it prints numbers.

    .venv/bin/python benchmarks/ui/bench.py [--jobs 100000] [--versions 10000]
        [--points 1000000] [--backend sqlite|postgresql] [--quick]

Needs the built UI (`make ui`) and /usr/bin/chromium for the browser figures.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from aimass.config import Settings

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CHROMIUM = "/usr/bin/chromium"
BATCH = 20_000


@dataclass
class Sizes:
    jobs: int
    versions: int
    points: int


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url(backend: str, tmp: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp / 'aimass.db'}"
    import psycopg

    name = f"aimass_uibench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str) -> None:
    """Drop a PostgreSQL database this script made (SQLite files go with the folder)."""
    if not url.startswith("postgresql"):
        return
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed(url: str, sizes: Sizes) -> int:
    """Insert the rows; the id of the job that holds the metric points."""
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    meta.reflect(engine, only=["projects", "jobs", "job_metrics", "models", "model_versions"])
    jobs, metrics = meta.tables["jobs"], meta.tables["job_metrics"]
    models, versions = meta.tables["models"], meta.tables["model_versions"]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        project = conn.execute(sa.select(meta.tables["projects"].c.id)).scalar()
        if project is None:
            project = conn.execute(
                meta.tables["projects"].insert().values(name="default", created_at=start)
            ).inserted_primary_key[0]
        states = ("succeeded", "failed", "cancelled", "succeeded")
        for lo in range(0, sizes.jobs, BATCH):
            rows = [
                {
                    "project_id": project,
                    "kind": "train",
                    "entry": f"classical.entry_{i % 7}",
                    "params": {},
                    "cpu": 1.0,
                    "gpu": 0,
                    "priority": 0,
                    "state": states[i % 4],
                    "attempt": 1,
                    "retries_used": 0,
                    "max_retries": 0,
                    "infra_requeues": 0,
                    "cancel_requested": False,
                    "outputs": {},
                    "created_at": start + timedelta(seconds=i),
                }
                for i in range(lo, min(sizes.jobs, lo + BATCH))
            ]
            conn.execute(jobs.insert(), rows)
        chart_job = conn.execute(sa.select(sa.func.max(jobs.c.id))).scalar()
        model = conn.execute(
            models.insert().values(
                project_id=project, name="many", description="", created_at=start, updated_at=start
            )
        ).inserted_primary_key[0]
        for lo in range(0, sizes.versions, BATCH):
            conn.execute(
                versions.insert(),
                [
                    {
                        "model_id": model,
                        "version": v + 1,
                        "flavor": "onnx",
                        "filename": "model.onnx",
                        "artifact_key": f"models/none/{v}",
                        "sha256": "0" * 64,
                        "size": 1,
                        "trusted": False,
                        "description": "",
                        "status": "ready",
                        "created_at": start + timedelta(seconds=v),
                    }
                    for v in range(lo, min(sizes.versions, lo + BATCH))
                ],
            )
        for lo in range(0, sizes.points, BATCH):
            conn.execute(
                metrics.insert(),
                [
                    {
                        "job_id": chart_job,
                        "attempt": 1,
                        "name": "loss",
                        "step": s,
                        "value": 1.0 / (s + 1),
                        "at": start,
                    }
                    for s in range(lo, min(sizes.points, lo + BATCH))
                ],
            )
    with engine.connect() as conn:  # fresh statistics, as autovacuum would keep them
        conn.execute(sa.text("ANALYZE"))
        conn.commit()
    engine.dispose()
    return int(chart_job or 0)


@contextmanager
def served(settings: Settings) -> Iterator[tuple[str, str]]:
    import uvicorn

    from aimass.api.app import create_app
    from aimass.api.server import server_config
    from aimass.platform import Platform

    app = create_app(Platform.from_settings(settings))
    server = uvicorn.Server(server_config(settings, app, host="127.0.0.1", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{settings.port}", settings.token_file.read_text().strip()
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[18] if len(samples) >= 20 else max(samples)


def api_figures(url: str, token: str, n: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
        first = http.get("/api/v1/jobs", params={"limit": 50})
        cursor = first.headers.get("X-Next-Cursor")
        cases: dict[str, tuple[str, dict[str, Any]]] = {
            "jobs first page p95 ms": ("/api/v1/jobs", {"limit": 50}),
            "jobs failed-filter first page p95 ms": (
                "/api/v1/jobs",
                {"limit": 50, "state": "failed"},
            ),
            "jobs page 2 by cursor p95 ms": ("/api/v1/jobs", {"limit": 50, "after": cursor or 1}),
            "jobs deep page by cursor p95 ms": (
                "/api/v1/jobs",
                {"limit": 50, "after": max(2, n // 2)},
            ),
            "versions search first page p95 ms": ("/api/v1/versions", {"limit": 50}),
        }
        for label, (path, params) in cases.items():
            http.get(path, params=params)
            samples = []
            for _ in range(60):
                t = time.perf_counter()
                assert http.get(path, params=params).status_code == 200
                samples.append((time.perf_counter() - t) * 1000)
            out[label] = p95(samples)
    return out


def metric_api(url: str, token: str, job: int, points: int) -> dict[str, float]:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=600) as h:
        out: dict[str, float] = {}
        cases: list[tuple[str, dict[str, int]]] = [("chart, max_points=2000", {"max_points": 2000})]
        if points <= 200_000:  # the whole series: ~100 B a point as JSON
            cases.append(("all points", {}))
        for label, params in cases:
            t = time.perf_counter()
            r = h.get(f"/api/v1/jobs/{job}/metrics", params=params)
            out[f"metrics API ({label}) s"] = time.perf_counter() - t
            out[f"metrics API ({label}) MB"] = len(r.content) / 1e6
        return out


def browser_figures(url: str, token: str, chart_job: int) -> dict[str, float]:
    if not Path(CHROMIUM).exists():
        return {}
    from playwright.sync_api import sync_playwright

    out: dict[str, float] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context()
        context.add_init_script(f"sessionStorage.setItem('aimass.token', {token!r})")
        page = context.new_page()
        fcp, rows = [], []
        for _ in range(5):
            page.goto(url + "/jobs")
            page.wait_for_selector("table.jobs tbody tr")
            fcp.append(
                page.evaluate(
                    "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1"
                )
            )
            rows.append(page.evaluate("performance.now()"))
        out["jobs page first contentful paint ms (median)"] = statistics.median(fcp)
        out["jobs page rows shown ms (median)"] = statistics.median(rows)
        page.add_init_script(
            """window.__long = 0; new PerformanceObserver((l) => { for (const e of l.getEntries())
               window.__long = Math.max(window.__long, e.duration); })
               .observe({type: 'longtask', buffered: true});"""
        )
        t = time.perf_counter()
        page.goto(url + f"/jobs/{chart_job}")
        page.wait_for_selector(".chart[data-metric='loss'] canvas", timeout=600_000)
        out["chart drawn s"] = time.perf_counter() - t
        out["chart points drawn"] = float(
            page.get_attribute(".chart[data-metric='loss']", "data-points") or 0
        )
        out["longest main-thread task ms"] = page.evaluate("window.__long")
        browser.close()
    return out


#: When the page shows a log line: a line element added under the log pane is stamped in
#: the next animation frame (when Chromium paints it), with the wall clock the job used.
SEEN_LINES = """window.__seen = [];
new MutationObserver((records) => {
  const added = [];
  for (const r of records) for (const n of r.addedNodes)
    if (n.nodeType === 1 && n.classList.contains('line') && n.closest('[data-testid=logs]'))
      added.push(n.textContent);
  if (added.length) requestAnimationFrame(() => {
    const at = Date.now();
    for (const text of added) window.__seen.push([text, at]);
  });
}).observe(document, {childList: true, subtree: true});"""


def log_figures(url: str, token: str, lines: int = 100, every_s: float = 0.1) -> dict[str, float]:
    """A script job logs ``lines`` timestamped lines; how long each takes to show on its page.

    The job runs on the local executor (its output goes straight to the attempt's log
    file, which the server's follower reads); the page is the job's page in Chromium.
    """
    if not Path(CHROMIUM).exists():
        return {}
    from playwright.sync_api import sync_playwright

    spec = {
        "kind": "script",
        "entry": "log_lines.py:main",
        "params": {"lines": lines, "every_s": every_s, "wait_s": 3.0},
    }
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
        made = http.post(
            "/api/v1/jobs/script",
            files={
                "source": ("log_lines.py", (Path(__file__).parent / "log_lines.py").read_bytes())
            },
            data={"spec": json.dumps(spec)},
        )
        made.raise_for_status()
        job = made.json()["id"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context()
        context.add_init_script(f"sessionStorage.setItem('aimass.token', {token!r})")
        page = context.new_page()
        page.add_init_script(SEEN_LINES)
        page.goto(url + f"/jobs/{job}")
        # Polled from here: the CSP forbids the eval that wait_for_function needs.
        deadline = time.monotonic() + 120
        count = "window.__seen.filter(([t]) => t.startsWith('line ')).length"
        while page.evaluate(count) < lines and time.monotonic() < deadline:
            page.wait_for_timeout(200)
        seen = page.evaluate("window.__seen")
        browser.close()
    delays = [at - float(text.split()[2]) for text, at in seen if text.startswith("line ")]
    return {
        f"log line write-to-screen p50 ms ({len(delays)} lines)": statistics.median(delays),
        f"log line write-to-screen p95 ms ({len(delays)} lines)": p95(delays),
        "log line write-to-screen max ms": max(delays),
    }


def bundle_kb() -> dict[str, float]:
    """Gzip sizes: what index.html loads (the first route) and every chunk together."""
    from aimass.api.ui import ui_dist

    dist = ui_dist()
    index = (dist / "index.html").read_text()
    files = list((dist / "assets").glob("*.js")) + list((dist / "assets").glob("*.css"))
    first = [f for f in files if f"/assets/{f.name}" in index]

    def kb(chosen: list[Path]) -> float:
        return sum(len(gzip.compress(f.read_bytes())) for f in chosen) / 1024

    return {"first-route JS+CSS KB gzip": kb(first), "all pages JS+CSS KB gzip": kb(files)}


def run(backend: str, sizes: Sizes) -> dict[str, float]:
    from aimass.api.server import prepare

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings(
            home=root / "home",
            database_url=database_url(backend, root),
            artifacts=str(root / "artifacts"),
            port=free_port(),
            jobs=False,
            tune_gc=False,
        )
        prepare(settings)
        t = time.perf_counter()
        chart_job = seed(settings.resolved_database_url, sizes)
        print(f"  seeded {sizes} on {backend} in {time.perf_counter() - t:.0f} s", flush=True)
        try:
            with served(settings) as (url, token):
                figures = api_figures(url, token, sizes.jobs)
                figures |= metric_api(url, token, chart_job, sizes.points)
                figures |= browser_figures(url, token, chart_job)
            # The same installation with its job runner on (off above, so that no zygote
            # or scheduler tick shares the two cores with the list and chart figures).
            with served(settings.model_copy(update={"jobs": True})) as (url, token):
                figures |= log_figures(url, token)
        finally:
            drop_database(settings.resolved_database_url)
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--quick", action="store_true", help="10x fewer rows")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    big = Sizes(args.jobs // scale, args.versions // scale, args.points // scale)
    small = Sizes(100, 100, 100)
    print(f"web UI benchmark on {args.backend}: {big} beside {small}", flush=True)
    base = run(args.backend, small)
    large = run(args.backend, big)
    print(f"\n{'figure':52} {'100 rows':>12} {'large':>12}")
    for key in large:
        print(f"{key:52} {base.get(key, float('nan')):12.1f} {large[key]:12.1f}")
    for key in base.keys() - large.keys():
        print(f"{key:52} {base[key]:12.1f} {'(skipped)':>12}")
    for key, value in bundle_kb().items():
        print(f"{key:52} {value:12.1f}")


if __name__ == "__main__":
    main()
