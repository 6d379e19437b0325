"""How long ``aimass server`` takes to answer with five broken plugins installed, and without.

    .venv/bin/python benchmarks/plugins/start_time.py [--timeout-s 1.0] [--runs 3]

Installs the test suite's broken plugins (tests/plugins/broken.py: an import
error, a wrong signature, an exception in register, a hang, a wrong-typed item,
plus a contract mismatch and a good plugin) with ``pip install --target``,
then starts the server as its own process (SQLite, jobs off) and prints the
seconds from launch to the first 200 from /v2/health/live. The hanging plugin
costs ``AIMASS_PLUGIN_TIMEOUT_S``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from tests.conftest import free_port  # noqa: E402
from tests.plugins.broken import BROKEN, GOOD  # noqa: E402
from tests.plugins.wheels import install_plugins  # noqa: E402

from aimass.config import Settings, settings_env  # noqa: E402


def start_seconds(home: Path, site: Path | None, timeout_s: float) -> tuple[float, float]:
    """Seconds from launch to live, and the seconds the server spent loading plugins."""
    settings = Settings(home=home, port=free_port(), jobs=False, plugin_timeout_s=timeout_s)
    env = {**os.environ, **settings_env(settings)}
    if site is not None:
        env["PYTHONPATH"] = str(site)
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "aimass.cli", "server"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                url = f"http://127.0.0.1:{settings.port}/v2/health/live"
                if httpx.get(url).status_code == 200:
                    live = time.perf_counter() - started
                    token = settings.token_file.read_text().strip()
                    plugins = httpx.get(
                        f"http://127.0.0.1:{settings.port}/api/v1/plugins",
                        headers={"Authorization": f"Bearer {token}"},
                    ).json()
                    return live, sum(p["load_seconds"] for p in plugins)
            except httpx.HTTPError:
                time.sleep(0.02)
            if process.poll() is not None:
                raise SystemExit(f"the server exited with {process.returncode}")
    finally:
        process.kill()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout-s", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        site = install_plugins([GOOD, *(d for d, _ in BROKEN.values())], folder / "plugins")
        for label, path in (("no plugins", None), (f"{len(BROKEN)} broken + 1 good", site)):
            home = folder / f"home-{label[:2]}"  # migrated by the first run, reused after
            runs = [start_seconds(home, path, args.timeout_s) for _ in range(args.runs)]
            times = [live for live, _ in runs]
            print(
                f"{label:>20}: launch to /v2/health/live {statistics.median(times):.2f} s median "
                f"(runs: {', '.join(f'{t:.2f}' for t in times)}), of which loading plugins "
                f"{statistics.median(load for _, load in runs):.2f} s "
                f"(plugin timeout {args.timeout_s} s)"
            )


if __name__ == "__main__":
    main()
