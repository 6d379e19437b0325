"""A three-member soft-vote ensemble against one model: requests/s at c=64 and per-member cost.

    .venv/bin/python benchmarks/serving/ensemble.py [--seconds 5] [--concurrency 64]

In-process, no HTTP (the HTTP edge is the same for both; see edge_cost.py):
64 coroutines send one-row requests for ``--seconds`` to (1) a ``ModelRunner``
over a tiny ONNX logistic regression (iris, 4 features, 3 classes) and (2) an
``EnsembleRunner`` (soft vote) over three such models: requests batched once,
each member run on the merged batch. Prints requests/s, microseconds a request, the per-member cost
inside the ensemble (``(t_ensemble - t_single) / 3``: what each extra member
adds) and the fuse step alone. Pin it to one core with ``taskset -c 0`` for the
one-core figure; compare runs on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from aimass.flavors.onnx import OnnxFlavor
from aimass.fusion.combiners import SoftVote
from aimass.serving.ensemble import EnsembleMember, EnsembleRunner
from aimass.serving.runner import ModelRunner


def _models(folder: Path) -> list[Path]:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    paths = []
    for i, c in enumerate((0.1, 1.0, 10.0)):
        model = LogisticRegression(C=c, max_iter=500).fit(x.astype(np.float32), y)
        onx = convert_sklearn(
            model,
            initial_types=[("x", FloatTensorType([None, 4]))],
            options={id(model): {"zipmap": False}},
            target_opset=17,
        )
        path = folder / f"m{i}.onnx"
        path.write_bytes(onx.SerializeToString())
        paths.append(path)
    return paths


def _runner(path: Path, batch: int = 64) -> ModelRunner:
    predictor = OnnxFlavor().load(path, False)
    return ModelRunner(predictor, predictor.signature, batch, 2.0, name=path.stem)


async def _drive(infer: Any, seconds: float, concurrency: int) -> float:
    row = {"x": np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)}
    done = 0
    stop = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await infer(row)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return done / (time.perf_counter() - started)


async def main_async(seconds: float, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paths = _models(Path(tmp))
        single = _runner(paths[0])
        await _drive(single.infer, 0.5, concurrency)  # warm up
        single_rps = await _drive(single.infer, seconds, concurrency)
        await single.close()
        members = [EnsembleMember(p.stem, 1, 1.0, _runner(p, batch=1)) for p in paths]
        ensemble = EnsembleRunner(members, strategy=SoftVote(), max_batch_size=64)
        await _drive(ensemble.infer, 0.5, concurrency)
        ensemble_rps = await _drive(ensemble.infer, seconds, concurrency)
        await ensemble.close()
    probas = [np.full((1, 3), 1 / 3) for _ in range(3)]
    loops = 20_000
    started = time.perf_counter()
    for _ in range(loops):
        SoftVote().fuse(probas, (1.0, 1.0, 1.0))
    fuse_us = (time.perf_counter() - started) / loops * 1e6
    t1, t3 = 1e6 / single_rps, 1e6 / ensemble_rps
    cpus = len(os.sched_getaffinity(0))
    print(f"c={concurrency}, {seconds:g} s each, {cpus} core(s), load {os.getloadavg()[0]:.1f}")
    print(f"single model          : {single_rps:8.0f} req/s  ({t1:6.1f} us a request)")
    print(f"3-member soft vote    : {ensemble_rps:8.0f} req/s  ({t3:6.1f} us a request)")
    print(f"per member in ensemble: {(t3 - t1) / 3:6.1f} us  (fuse step alone {fuse_us:.1f} us)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    asyncio.run(main_async(args.seconds, args.concurrency))


if __name__ == "__main__":
    main()
