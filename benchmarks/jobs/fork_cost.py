"""CPU of one fork + exit of a zygote-like process, by what it pre-imported.

    .venv/bin/python benchmarks/jobs/fork_cost.py [--forks 200]

For each preload set (the zygote's, ``aimass.platform.jobs.PRELOAD``, built up one
library at a time), a fresh interpreter imports it, ``gc.freeze()``s as the zygote
does, then forks ``--forks`` children that ``os._exit(0)`` at once: CPU of parent and
reaped children per fork, beside the process's RSS and anonymous RSS. The floor of an
attempt's cost on the local executor: copying and tearing down the page tables.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from common import loadavg

CHILD = """
import gc, os, resource, sys
for name in sys.argv[2].split(","):
    if name:
        __import__(name)
gc.collect()
gc.freeze()
def cpu():
    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime
status = open("/proc/self/status").read()
rss = int(status.split("VmRSS:")[1].split()[0]) // 1024
anon = int(status.split("RssAnon:")[1].split()[0]) // 1024
n = int(sys.argv[1])
start = cpu()
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
print(f"{rss} {anon} {1000 * (cpu() - start) / n:.2f}")
"""

SETS = ["aimass.executors._child", "aimass.runtime", "aimass.client", "httpx"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forks", type=int, default=200)
    args = parser.parse_args()
    print("| pre-imported | RSS MB | anon MB | CPU ms per fork + exit | load |")
    print("| --- | ---: | ---: | ---: | --- |")
    steps = [("nothing", []), ("aimass runtime + httpx", SETS)]
    for lib in ("numpy", "pandas", "sklearn"):
        steps.append((f"+ {lib}", [*steps[-1][1], lib]))
    for label, names in steps:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(args.forks), ",".join(names)],
            capture_output=True,
            text=True,
            check=True,
            env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        ).stdout.split()
        print(f"| {label} | {out[0]} | {out[1]} | {out[2]} | {loadavg()} |")


if __name__ == "__main__":
    main()
