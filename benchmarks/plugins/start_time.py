"""How long ``aimass server`` takes to answer with five broken plugins installed, and without.

    .venv/bin/python benchmarks/plugins/start_time.py [--timeout-s 1.0] [--runs 3]

Installs the test suite's broken plugins (tests/plugins/broken.py: an import
error, a wrong signature, an exception in register, a hang, a wrong-typed item,
plus a contract mismatch and a good plugin) with ``pip install --target``,
then starts the server as its own process (SQLite, jobs off, a database
migrated by an earlier start) and prints the seconds from launch to the first
200 from /v2/health/live, and the CPU seconds the server had used by then (a
figure that a loaded machine inflates far less than the wall clock). The
hanging plugin costs ``AIMASS_PLUGIN_TIMEOUT_S``, beside the server's own start.

Each case runs twice: with Python's bytecode cached (as after ``pip install``
or ``uv pip install --compile-bytecode``; one untimed start fills the cache)
and from source only (as a uv install without ``--compile-bytecode`` under
``PYTHONDONTWRITEBYTECODE=1``: every module compiled at every start). Both use
a cache folder of their own (``PYTHONPYCACHEPREFIX``), so the installed files
are left as they are. A ``PYTHONPATH`` already set (another checkout's ``src``,
to measure it) comes before the plugins' folder.
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


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds process ``pid`` has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_seconds(
    home: Path, env: dict[str, str], timeout_s: float, nice: int = 0
) -> tuple[float, float, int]:
    """Seconds from launch to live, the CPU seconds used by then, and the failed plugins."""
    settings = Settings(home=home, port=free_port(), jobs=False, plugin_timeout_s=timeout_s)
    started = time.perf_counter()
    process = subprocess.Popen(
        ["nice", "-n", str(nice), sys.executable, "-m", "aimass.cli", "server"],
        env={**env, **settings_env(settings)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                url = f"http://127.0.0.1:{settings.port}/v2/health/live"
                if httpx.get(url).status_code == 200:
                    live = time.perf_counter() - started
                    cpu = cpu_seconds(process.pid)
                    token = settings.token_file.read_text().strip()
                    plugins = httpx.get(
                        f"http://127.0.0.1:{settings.port}/api/v1/plugins",
                        headers={"Authorization": f"Bearer {token}"},
                    ).json()
                    return live, cpu, sum(p["status"] == "failed" for p in plugins)
            except httpx.HTTPError:
                time.sleep(0.02)
            if process.poll() is not None:
                raise SystemExit(f"the server exited with {process.returncode}")
    finally:
        process.kill()
        process.wait()


def environment(site: Path | None, cache: Path, bytecode: bool) -> dict[str, str]:
    """The server's environment: the plugins on its path, and its own bytecode cache folder."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if not bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(site)) if p)
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout-s", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run the server at this niceness (below 0 needs root; it does not reach across "
        "the kernel's autogroups, so other sessions' load still counts)",
    )
    args = parser.parse_args()
    print(
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the start, "
        f"server niceness {args.nice}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        site = install_plugins([GOOD, *(d for d, _ in BROKEN.values())], folder / "plugins")
        for bytecode in (True, False):
            cache = folder / f"pycache-{bytecode}"
            for label, path in (("no plugins", None), (f"{len(BROKEN)} broken + 1 good", site)):
                home = folder / f"home-{label[:2]}"
                env = environment(path, cache, bytecode)
                start_seconds(home, env, args.timeout_s)  # migrates; fills the bytecode cache
                runs = [
                    start_seconds(home, env, args.timeout_s, args.nice) for _ in range(args.runs)
                ]
                times = [live for live, _, _ in runs]
                print(
                    f"{'bytecode cached' if bytecode else 'source only':>15} "
                    f"{label:>18}: launch to /v2/health/live {statistics.median(times):.2f} s "
                    f"median (runs: {', '.join(f'{t:.2f}' for t in times)}), "
                    f"server CPU {statistics.median(cpu for _, cpu, _ in runs):.2f} s, "
                    f"{runs[-1][2]} plugin(s) listed as failed "
                    f"(plugin timeout {args.timeout_s:g} s)",
                    flush=True,
                )
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
