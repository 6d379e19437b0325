"""Train the three fixed benchmark models and save them in every server's format.

Runs in the peers' virtual environment (benchmarks/serving/.venv-peers), which
has scikit-learn, torch, onnx/skl2onnx, MLflow and BentoML. Everything is
written under WORK (default benchmarks/serving/work, gitignored):

    data.npz                 standardized breast_cancer features (float32), labels
    bodies/…                 the one-row request body each server takes
    expected.json            in-process predictions for the check rows
    aimass/lr.onnx           LogisticRegression as ONNX (skl2onnx, zipmap off)
    aimass/{small,heavy}_mlp.pt   TorchScript (torch.jit.script) with an embedded signature
    mlflow/{lr,small_mlp,heavy_mlp}/   MLflow saved-model directories
    bentoml/                 a BENTOML_HOME whose model store holds the three models
    plain/{lr.pkl,small_mlp.pt,heavy_mlp.pt}   the objects the bare FastAPI app loads

Models (fixed seeds):
    lr         sklearn LogisticRegression on breast_cancer (30 features, standardized)
    small_mlp  torch MLP 30→256→256→2, trained 200 full-batch Adam steps
    heavy_mlp  torch MLP 30→2048→2048→2048→2, initialized from seed 0 and trained
               20 steps: it is here for its serving cost, not its accuracy
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODELS = ("lr", "small_mlp", "heavy_mlp")
#: Rows of the data set the correctness check sends (as one request of 3 rows):
#: the first row of class 0 and the first two of class 1, so both classes appear.
CHECK_ROWS = [0, 19, 20]
#: The row every benchmark request carries.
LOAD_ROW = 0


def load_data() -> tuple[np.ndarray, np.ndarray]:
    """breast_cancer, standardized with its own mean and std, as float32."""
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    # Round so that the JSON bodies hold exactly the values the check compares with.
    x = np.round(x, 5).astype(np.float32)
    return x, y.astype(np.int64)


def train_lr(x: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000, random_state=0).fit(x, y)


def make_mlp(hidden: list[int], seed: int):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    width = 30
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, 2))
    # nn.Sequential of stock layers: pickles without any code of ours, so every
    # server (MLflow, BentoML, FastAPI) can load it, and torch.jit.script compiles it.
    return nn.Sequential(*layers)


def train_mlp(model, x: np.ndarray, y: np.ndarray, steps: int, seed: int):
    import torch

    torch.manual_seed(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(xt), yt)
        loss.backward()
        opt.step()
    model.eval()
    return model


def predict(name: str, model, x: np.ndarray) -> np.ndarray:
    """The in-process prediction: labels for lr, logits for the MLPs."""
    if name == "lr":
        return model.predict(x)
    import torch

    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


def build(work: Path) -> None:
    import torch

    torch.set_num_threads(1)
    x, y = load_data()
    models = {
        "lr": train_lr(x, y),
        "small_mlp": train_mlp(make_mlp([256, 256], seed=0), x, y, steps=200, seed=0),
        "heavy_mlp": train_mlp(make_mlp([2048, 2048, 2048], seed=0), x, y, steps=20, seed=0),
    }
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    np.savez(work / "data.npz", x=x, y=y)

    expected = {}
    for name, model in models.items():
        out = predict(name, model, x[CHECK_ROWS])
        full = predict(name, model, x)
        labels = full if name == "lr" else full.argmax(axis=1)
        acc = float((labels == y).mean())
        expected[name] = {
            "rows": CHECK_ROWS,
            "output": out.tolist(),
            "kind": "labels" if name == "lr" else "logits",
            "train_accuracy": round(acc, 4),
        }
        print(f"  {name}: train accuracy {acc:.3f}")
    (work / "expected.json").write_text(json.dumps(expected, indent=1))

    save_aimass(work / "aimass", models, x)
    save_plain(work / "plain", models)
    save_mlflow(work / "mlflow", models, x)
    save_bentoml(work / "bentoml", models)
    write_bodies(work / "bodies", x)


def save_aimass(out: Path, models: dict, x: np.ndarray) -> None:
    import onnx
    import torch
    from skl2onnx import to_onnx

    out.mkdir(parents=True)
    from skl2onnx.common.data_types import FloatTensorType

    # Input named "input" like the MLPs' signature; outputs "label" and "probabilities".
    onx = to_onnx(
        models["lr"],
        initial_types=[("input", FloatTensorType([None, 30]))],
        options={id(models["lr"]): {"zipmap": False}},
        target_opset=17,
    )
    onnx.save_model(onx, str(out / "lr.onnx"))
    signature = {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 30]}],
        "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 2]}],
    }
    for name in ("small_mlp", "heavy_mlp"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scripted = torch.jit.script(models[name])
            torch.jit.save(
                scripted,
                str(out / f"{name}.pt"),
                _extra_files={"aimass_signature.json": json.dumps(signature)},
            )


def save_plain(out: Path, models: dict) -> None:
    import torch

    out.mkdir(parents=True)
    with open(out / "lr.pkl", "wb") as f:
        pickle.dump(models["lr"], f)
    for name in ("small_mlp", "heavy_mlp"):
        torch.save(models[name], out / f"{name}.pt")


def save_mlflow(out: Path, models: dict, x: np.ndarray) -> None:
    import mlflow.pytorch
    import mlflow.sklearn
    from mlflow.models import infer_signature

    out.mkdir(parents=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.sklearn.save_model(
            models["lr"],
            str(out / "lr"),
            signature=infer_signature(x[:3], models["lr"].predict(x[:3])),
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
        )
        for name in ("small_mlp", "heavy_mlp"):
            # MLflow 3's default for torch is the "pt2" (torch.export) format,
            # which needs an input example; a batch of 3 makes the batch dim dynamic.
            sample = predict(name, models[name], x[:3])
            mlflow.pytorch.save_model(
                models[name],
                str(out / name),
                input_example=x[:3],
                signature=infer_signature(x[:3], sample),
            )


def save_bentoml(home: Path, models: dict) -> None:
    os.environ["BENTOML_HOME"] = str(home)
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    import bentoml
    import torch

    bentoml.sklearn.save_model("lr", models["lr"])
    # bentoml.pytorch is deprecated in BentoML 1.4; its documented replacement is
    # a model-store entry written with bentoml.models.create.
    for name in ("small_mlp", "heavy_mlp"):
        with bentoml.models.create(name) as entry:
            torch.save(models[name], entry.path_of("model.pt"))


def write_bodies(out: Path, x: np.ndarray) -> None:
    """One-row (load) and three-row (check) request bodies for each server's format."""
    out.mkdir(parents=True)
    for tag, rows in (("load", [LOAD_ROW]), ("check", CHECK_ROWS)):
        data = [[round(float(v), 5) for v in row] for row in x[rows]]
        bodies = {
            "aimass": {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [len(rows), 30],
                        "datatype": "FP32",
                        "data": [v for r in data for v in r],
                    }
                ]
            },
            "mlflow": {"inputs": data},
            "bentoml": {"inputs": data},
            "fastapi": {"inputs": data},
        }
        for server, body in bodies.items():
            (out / f"{server}.{tag}.json").write_text(json.dumps(body, separators=(",", ":")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=HERE / "work")
    args = parser.parse_args()
    build(args.work)
    print(f"models written under {args.work}")


if __name__ == "__main__":
    main()
