"""Cold start of the 90 MB MiniLM model, two ways, for three paths (``llm.py --cold-start``).

    .venv/bin/python benchmarks/serving/llm.py --cold-start [--repeat 3]

Paths: the fp32 transformers directory (safetensors, torch), and the same model
exported by ``transformers.export_onnx`` as an fp32 and an int8 ONNX directory
(tokenizers + onnxruntime, no torch).

1. **Fresh process until its first answer**: ``python -c`` that imports aimass's
   flavor, loads the ZIP the registry stores and embeds one sentence; timed by
   the parent from spawn to exit (interpreter start included), the child's own
   split (imports, then load + first embedding) printed beside it. ``--repeat``
   runs alternate the paths; medians are shown.
2. **A deployment created on a running server until its first answer**: one
   ``aimass server`` that holds the three versions (uploaded, then the server
   restarted, so it warms its transformers imports at start, as a server that
   holds such models does); once its system log says the warm-up ended, each
   deployment is created and ``/v2/models/<name>/infer`` polled every 10 ms until
   it answers. Timed from the create request to the first answer.

Every child runs with one math thread, unpinned (``--pin``: on core 0, when ``taskset``
exists; on a shared machine a pinned child waits for that one core).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]

EXPORT = r"""
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from aimass.flavors._hf_files import extract_model_archive, zip_folder
from aimass.jobs.builtin.onnx_export import SAMPLE, export_directory
folder = Path(sys.argv[1])
source = extract_model_archive(folder / "fp32-transformers.zip", folder / "minilm", False)
for name, quantize in (("fp32-onnx", False), ("int8-onnx", True)):
    export_directory(folder / "minilm", source, False, folder / name, quantize, None, SAMPLE)
    zip_folder(folder / name, folder / f"{name}.zip")
"""

FRESH = r"""
import sys, time
t = time.perf_counter()
from pathlib import Path
import numpy as np
from aimass.flavors.transformers import TransformersFlavor
flavor = TransformersFlavor()
imported = time.perf_counter() - t
t = time.perf_counter()
out = flavor.load(Path(sys.argv[1]), False).predict(np.array(["a cold start"], dtype=object))
assert out.shape[0] == 1
print(imported, time.perf_counter() - t)
"""

PATHS = ("fp32-transformers", "fp32-onnx", "int8-onnx")


def prepare(folder: Path, pin: list[str], env: dict[str, str]) -> dict[str, Path]:
    """The three archives: MiniLM as the package ships it, and its fp32/int8 ONNX exports."""
    from tests.llm.hf_models import minilm_dir, zip_dir

    folder.mkdir(parents=True)
    zip_dir(minilm_dir(), folder / "fp32-transformers.zip")
    subprocess.run(
        [*pin, sys.executable, "-c", EXPORT, str(folder), str(ROOT)], env=env, check=True,
        capture_output=True,
    )  # fmt: skip
    return {name: folder / f"{name}.zip" for name in PATHS}


def fresh_process(archives: dict[str, Path], repeat: int, pin: list[str], env: dict[str, str]):
    """Per path: (wall from spawn to exit, child's imports, child's load + first embed)."""
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in archives}
    for _ in range(repeat):
        for name, archive in archives.items():
            # A fresh extraction each run: the flavor reuses <archive>.d when it exists.
            copy = archive.with_name(f"run-{len(runs[name])}-{archive.name}")
            copy.write_bytes(archive.read_bytes())
            began = time.perf_counter()
            out = subprocess.run(
                [*pin, sys.executable, "-c", FRESH, str(copy)], env=env, capture_output=True,
                text=True,
            )  # fmt: skip
            wall = time.perf_counter() - began
            if out.returncode:
                raise SystemExit(out.stderr[-3000:])
            imported, loaded = (float(x) for x in out.stdout.split()[-2:])
            runs[name].append((wall, imported, loaded))
    return runs


def _wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def _start_server(home: Path, port: int, pin: list[str], env: dict[str, str]) -> subprocess.Popen:  # type: ignore[type-arg]
    server_env = {**env, "AIMASS_HOME": str(home), "AIMASS_PORT": str(port), "AIMASS_JOBS": "false"}
    server = subprocess.Popen(
        [*pin, sys.executable, "-m", "aimass.cli", "server"], env=server_env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def live() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/v2/health/live").status_code == 200
        except httpx.HTTPError:
            return False

    _wait_for(live, 120, "the server")
    return server


def _warm_logged(home: Path) -> bool:
    return any(
        "transformers libraries warm" in path.read_text(errors="replace")
        for path in (home / "logs").rglob("*.jsonl")
    )


def running_server(archives: dict[str, Path], port: int, pin: list[str], env: dict[str, str]):
    """Per path: seconds from creating its deployment to its first answer."""
    import aimass

    home = archives["int8-onnx"].parent / "home"
    server = _start_server(home, port, pin, env)
    url = f"http://127.0.0.1:{port}"
    try:
        token = (home / "token").read_text().strip()
        with aimass.Client(url=url, token=token) as client:
            for name, archive in archives.items():
                client.models.upload(name, archive)
    finally:
        server.terminate()
        server.wait(timeout=60)
    for path in (home / "logs").rglob("*.jsonl"):
        path.unlink()  # the upload warmed the first server; the restart must warm itself
    server = _start_server(home, port, pin, env)
    results: dict[str, float] = {}
    try:
        began = time.perf_counter()
        _wait_for(lambda: _warm_logged(home), 300, "the transformers warm-up")
        warm = time.perf_counter() - began
        headers = {"Authorization": f"Bearer {token}"}
        body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1],
                            "data": ["a cold start"]}]}  # fmt: skip
        with (
            aimass.Client(url=url, token=token) as client,
            httpx.Client(base_url=url, headers=headers, timeout=60) as http,
        ):
            for name in archives:
                began = time.perf_counter()
                client.deployments.create(name, name=name, version=1)
                while http.post(f"/v2/models/{name}/infer", json=body).status_code != 200:
                    time.sleep(0.01)
                results[name] = time.perf_counter() - began
    finally:
        server.terminate()
        server.wait(timeout=60)
    return warm, results


def run(folder: Path, repeat: int, port: int, pin: list[str]) -> None:
    """Print both tables."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    archives = prepare(folder / "cold", pin, env)
    sizes = {name: path.stat().st_size / 1024**2 for name, path in archives.items()}
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    runs = fresh_process(archives, repeat, pin, env)
    print(f"fresh process until its first answer (median of {repeat}, wall = spawn to exit):")
    for name, rows in runs.items():
        wall, imported, loaded = (statistics.median(r[i] for r in rows) for i in range(3))
        print(
            f"  {name:18} {sizes[name]:5.0f} MB  wall {wall:5.2f} s  "
            f"(imports {imported:.2f} s, load + first embedding {loaded:.2f} s)"
        )
    warm, created = running_server(archives, port, pin, env)
    print(f"running server (its transformers imports warmed at start in {warm:.1f} s):")
    for name, seconds in created.items():
        print(f"  {name:18} deployment created -> first answer {seconds:5.2f} s")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
