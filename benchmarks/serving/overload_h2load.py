"""The overload point measured by a C load generator: latency per status, per request.

    .venv/bin/python benchmarks/serving/overload_h2load.py [--concurrency 2048 8192]
        [--duration 10] [--max-queue 128] [--max-inflight 512] [--max-queue-wait 0.25]

The same server as ``overload.py`` (``demo_server`` there: ``aimass server --demo``, one
worker pinned to ``--server-core``, auth on, probe port on, the demo ONNX deployment's
``max_queue`` set) and the same probers (live and ready, main and probe port, a new
connection every 100 ms each, in their own process), but the crowd is ``h2load --h1``
(nghttp2, C, one thread pinned to ``--client-core``, open-file limit raised to the hard
limit): each of ``-c`` keep-alive connections sends one-row ``/v2/models/breast-cancer-onnx/infer``
requests back to back, and ``--log-file`` records every request's start, status and
latency. Prints per concurrency and per status (200 admitted, 429 queue full or waited
too long, 503 in-flight cap): count, p50, p99, p99.9, max, and the admitted p99 per
second of the run, beside the server's own request-time histogram and its RSS.
``apt-get install -y nghttp2-client`` gives h2load.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from aimass.config import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overload import (
    MODEL,
    _histograms,
    _quantile,
    _rss_mb,
    demo_server,
    listen_overflows,
    log_sizes,
    loop_report,
    probe_report,
    start_prober,
)


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values`` (nearest rank), NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def by_status(log: Path) -> tuple[dict[int, list[float]], dict[int, list[float]]]:
    """Latencies (ms) by status, and admitted (200) latencies by second of the run."""
    statuses: dict[int, list[float]] = defaultdict(list)
    seconds: dict[int, list[float]] = defaultdict(list)
    first: int | None = None
    for line in log.read_text().splitlines():
        start_us, status, latency_us = (int(x) for x in line.split("\t")[:3])
        first = start_us if first is None else min(first, start_us)
        statuses[status].append(latency_us / 1000)
        if status == 200:
            seconds[start_us].append(latency_us / 1000)
    per_second: dict[int, list[float]] = defaultdict(list)
    for start_us, values in seconds.items():
        per_second[(start_us - (first or 0)) // 1_000_000].extend(values)
    return statuses, per_second


def h2load(
    url: str, token: str, body: Path, clients: int, duration: float, core: str, log: Path
) -> str:
    """Run the crowd; h2load's own summary."""
    command = [
        "h2load", "--h1", "-t", "1", "-c", str(clients), "-m", "1",
        "-D", f"{duration:g}", "--warm-up-time", "1",
        "-N", "10s",  # a connection silent for 10 s ends: one stuck request cannot hold the run
        "-H", f"authorization: Bearer {token}", "-H", "content-type: application/json",
        "-d", str(body), "--log-file", str(log), url,
    ]  # fmt: skip
    if shutil.which("taskset"):
        command = ["taskset", "-c", core, *command]
    # h2load before nghttp2 1.64 can run on long past -D when the server closes HTTP/1.1
    # connections (here: the 503s past the connection cap): a client closed as the
    # duration ends races with its reconnect (nghttp2 issue 2250, fixed by PR 2249), and
    # -N does not apply under -D (issue 1960). Stop it; its log holds the measured requests.
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as running:
        try:
            out, _ = running.communicate(timeout=duration + 30)
        except subprocess.TimeoutExpired:
            running.terminate()
            out, _ = running.communicate(timeout=30)
            out += (
                "\n(h2load overstayed -D by 30 s and was stopped: nghttp2 < 1.64 races "
                "reconnects at the end of -D, its issue 2250)"
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[2048, 8192])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--max-queue", type=int, default=128)
    parser.add_argument("--max-inflight", type=int, default=512)
    parser.add_argument("--max-queue-wait", type=float, default=0.25)
    parser.add_argument(
        "--max-connections",
        type=int,
        default=Settings.model_fields["max_connections"].default,
        help="AIMASS_MAX_CONNECTIONS (default: the server's own)",
    )
    parser.add_argument("--server-core", default="0")
    parser.add_argument("--client-core", default="1")
    parser.add_argument("--port", type=int, default=18390)
    args = parser.parse_args()
    if shutil.which("h2load") is None:
        raise SystemExit("needs h2load: apt-get install -y nghttp2-client")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(
        f"aimass overload point, h2load crowd: 1 worker on core {args.server_core}, h2load "
        f"(1 thread) on core {args.client_core}, max_queue {args.max_queue}, max_inflight "
        f"{args.max_inflight or 'off'}, max_queue_wait {args.max_queue_wait or 'off'}, "
        f"max_connections {args.max_connections}, "
        f"{args.duration:g} s per point, open files {hard}, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    with demo_server(
        args.port,
        args.server_core,
        max_connections=args.max_connections,
        max_inflight=args.max_inflight,
        max_queue_wait=args.max_queue_wait,
        max_queue=args.max_queue,
    ) as demo:
        body = demo.home / "body.json"
        body.write_bytes(demo.body)
        for clients in args.concurrency:
            rss_before = _rss_mb(demo.pid)
            histograms = _histograms(demo.base, demo.token)
            log = demo.home / f"h2load-{clients}.tsv"
            load = " ".join(f"{x:.2f}" for x in os.getloadavg())
            overflows = listen_overflows()
            mark = log_sizes(demo.home)
            probed = start_prober(args.port, demo.pid, args.duration + 1, demo.request)
            summary = h2load(
                f"{demo.base}/v2/models/{MODEL}/infer", demo.token, body, clients,
                args.duration, args.client_core, log,
            )  # fmt: skip
            probes, failures, _rss = probed()
            time.sleep(2.0)
            after = _histograms(demo.base, demo.token)
            _report(clients, args.duration, log, summary, load)
            print(f"    probes (new connection each, 10/s): {probe_report(probes, failures)}")
            print(f"    server's event loop: {loop_report(demo.home, mark)}")
            print(
                "    connections dropped from full accept queues (kernel, machine-wide): "
                f"{listen_overflows() - overflows:,}"
            )
            print(
                f"    server side, admitted: request p50 "
                f"{_quantile(histograms['request_seconds'], after['request_seconds'], 0.5)} s "
                f"p99 {_quantile(histograms['request_seconds'], after['request_seconds'], 0.99)}"
                f" s; RSS {rss_before:.0f} MB before, {_rss_mb(demo.pid):.0f} MB after",
                flush=True,
            )


def _report(clients: int, duration: float, log: Path, summary: str, load: str) -> None:
    statuses, per_second = by_status(log)
    total = sum(len(v) for v in statuses.values())
    rate = total / duration
    print(
        f"  c={clients} (load average {load} at start): {rate:,.0f} answers/s; a closed-loop "
        f"crowd's floor (Little's law, c / answers/s): {1000 * clients / max(rate, 1):,.0f} ms"
    )
    for status in sorted(statuses):
        values = statuses[status]
        print(
            f"    {status}: {len(values):,} ({100 * len(values) / total:.1f} %), p50 "
            f"{percentile(values, 0.5):.1f} ms, p99 {percentile(values, 0.99):.1f} ms, "
            f"p99.9 {percentile(values, 0.999):.1f} ms, max {max(values):.1f} ms"
        )
    admitted = " ".join(
        f"{second}s:{percentile(values, 0.99):.0f}" for second, values in sorted(per_second.items())
    )
    print(f"    admitted p99 (ms) by second of the run: {admitted}")
    for line in summary.splitlines():
        if line.startswith(("requests:", "status codes:", "finished in", "(h2load overstayed")):
            print(f"    h2load: {line.strip()}")


if __name__ == "__main__":
    main()
