"""``aimass server`` with the timing hooks of ``_trace_hooks`` installed (for ``breakdown.py``).

    AIMASS_BENCH_TRACE=trace.txt python benchmarks/jobs/trace_server.py --port N

Settings come from ``AIMASS_*`` as for ``aimass server``. The zygote gets this
folder on its import path (the server's ``sys.path``) and imports
``_trace_hooks`` as a preload module, so attempts log their steps as well.
"""

from __future__ import annotations

import argparse

import _trace_hooks

from aimass.api.server import run_server
from aimass.config import Settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    _trace_hooks.install_server()
    run_server(Settings(port=args.port))


if __name__ == "__main__":
    main()
