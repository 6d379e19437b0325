"""Where ``aimass server``'s start goes: wall and CPU seconds of each stage before it listens.

    .venv/bin/python benchmarks/plugins/start_stages.py HOME [--timeout-s 1.0]

Does in this process what ``aimass server`` does before uvicorn listens, on the
installation in HOME (made and migrated by a first run): start the plugins'
load (as the command does, before the server's own imports), import the
server, check the database and the token, build the platform (waiting for the
plugins), create the app and run its lifespan start (which loads deployments).
Put plugins on ``PYTHONPATH`` to include them. CPU seconds are this process's.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import time
from pathlib import Path

from aimass.config import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("home", type=Path)
    parser.add_argument("--timeout-s", type=float, default=1.0)
    args = parser.parse_args()
    marks: list[tuple[str, float, float]] = []
    last = [time.perf_counter(), time.process_time()]

    def lap(name: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        marks.append((name, wall - last[0], cpu - last[1]))
        last[:] = [wall, cpu]

    settings = Settings(
        home=args.home, port=0, jobs=False, plugin_timeout_s=args.timeout_s, tune_gc=False
    )
    from aimass.plugins import PluginLoad

    plugins = PluginLoad(timeout_s=args.timeout_s)
    lap("plugins started")
    server = importlib.import_module("aimass.api.server")
    lap("imports")
    server.prepare(settings)
    lap("database check, token")
    server.install_system_log(settings)
    app = server.create_app(server._platform(settings, plugins))
    lap("platform (plugins' result) and app")

    async def lifespan() -> None:
        async with app.control.router.lifespan_context(app.control):
            lap("lifespan start (deployments)")

    asyncio.run(lifespan())
    for name, wall, cpu in marks:
        print(f"{name:36s} wall {wall:6.2f} s  cpu {cpu:5.2f} s")
    total_wall, total_cpu = sum(m[1] for m in marks), sum(m[2] for m in marks)
    print(f"{'total':36s} wall {total_wall:6.2f} s  cpu {total_cpu:5.2f} s")


if __name__ == "__main__":
    main()
