"""The v2 codec's CPU per tiny request: a git ref's ``serving/protocol.py`` against this tree's.

    .venv/bin/python benchmarks/serving/protocol_ab.py [REF=main] [--rounds 6] [--n 20000]

Loads REF's protocol module beside this checkout's, then alternates them round by round on
the ``ab_cpu.sh`` request (one breast-cancer row, FP32 [1, 30]) and a two-output answer:
microseconds of process CPU per parse and per encode, the new/old ratio of each round, and
the load average. Checks first that both give the same request and the same answer bytes.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import orjson

from aimass.flavors.signature import Signature, TensorSpec
from aimass.serving import protocol as here

ROOT = Path(__file__).resolve().parents[2]


def load_ref(ref: str, folder: Path) -> ModuleType:
    """REF's protocol.py as a module of its own (it imports the rest from this tree)."""
    text = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{ref}:src/aimass/serving/protocol.py"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    path = folder / "ref_protocol.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("ref_protocol", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ref_protocol"] = module
    spec.loader.exec_module(module)
    return module


def per_call(work: Callable[[], object], n: int) -> float:
    """Microseconds of process CPU per call of ``work``, over ``n`` calls."""
    started = time.process_time()
    for _ in range(n):
        work()
    return (time.process_time() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ref", nargs="?", default="main")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--n", type=int, default=20000, help="calls per round and side")
    args = parser.parse_args()
    from sklearn.datasets import load_breast_cancer

    row = load_breast_cancer().data[:1].astype("float32")[0].tolist()
    body = orjson.dumps(
        {"inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32", "data": row}]}
    )
    signature = Signature(inputs=[TensorSpec(name="X", datatype="FP32", shape=[-1, 30])])
    outputs = {
        "label": np.array([1], dtype=np.int64),
        "probabilities": np.array([[0.1, 0.9]], dtype=np.float32),
    }
    with tempfile.TemporaryDirectory(prefix="protocol-ab.") as folder:
        ref = load_ref(args.ref, Path(folder))
        sides = {"ref": ref, "here": here}
        parsed = [m.parse_infer_request(body, None, signature, 10**6) for m in sides.values()]
        assert parsed[0].inputs["X"].tobytes() == parsed[1].inputs["X"].tobytes()
        answers = [
            m.encode_infer_response("breast-cancer-onnx", "1", None, outputs, None, False)
            for m in sides.values()
        ]
        assert answers[0] == answers[1], "the answers differ"
        figures: dict[str, list[float]] = {"parse ref": [], "parse here": [], "encode ref": [],
                                           "encode here": []}  # fmt: skip
        for _ in range(args.rounds):
            for name, m in sides.items():
                figures[f"parse {name}"].append(
                    per_call(
                        lambda m=m: m.parse_infer_request(body, None, signature, 10**6), args.n
                    )
                )
                figures[f"encode {name}"].append(
                    per_call(
                        lambda m=m: m.encode_infer_response(
                            "breast-cancer-onnx", "1", None, outputs, None, False
                        ),
                        args.n,
                    )
                )
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"# {args.ref} vs this checkout, {args.n} calls a round, load {load}")
    for step in ("parse", "encode"):
        old, new = figures[f"{step} ref"], figures[f"{step} here"]
        ratios = [b / a for a, b in zip(old, new, strict=True)]
        print(
            f"{step}: ref {statistics.median(old):.2f} us, here {statistics.median(new):.2f} us "
            f"(medians); here/ref each round: " + " ".join(f"{r:.2f}" for r in ratios)
        )


if __name__ == "__main__":
    main()
