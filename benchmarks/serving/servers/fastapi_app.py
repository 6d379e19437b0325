"""The bare FastAPI app: the model loaded at startup, an ``async def`` endpoint that calls predict.

This is what a person writes in ten minutes to put a model behind HTTP; the
benchmark uses it as the baseline of "a Python web framework plus the model".

    BENCH_MODEL=lr BENCH_WORK=benchmarks/serving/work \\
        uvicorn servers.fastapi_app:app --workers 1 --port 8000

POST /predict {"inputs": [[30 floats], ...]} -> {"predictions": [...]}
(labels for the LogisticRegression, logits for the MLPs). GET /health -> 200.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch
from fastapi import FastAPI
from pydantic import BaseModel

torch.set_num_threads(1)

MODEL = os.environ.get("BENCH_MODEL", "lr")
WORK = Path(os.environ.get("BENCH_WORK", Path(__file__).resolve().parent.parent / "work"))

if MODEL == "lr":
    with open(WORK / "plain" / "lr.pkl", "rb") as f:
        model = pickle.load(f)

    def predict(x: np.ndarray) -> list:
        return model.predict(x).tolist()

else:
    model = torch.load(WORK / "plain" / f"{MODEL}.pt", weights_only=False)
    model.eval()

    def predict(x: np.ndarray) -> list:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).tolist()


class PredictRequest(BaseModel):
    inputs: list[list[float]]


app = FastAPI()


@app.get("/health")
async def health() -> dict:
    return {"status": "ok"}


@app.post("/predict")
async def predict_route(request: PredictRequest) -> dict:
    return {"predictions": predict(np.asarray(request.inputs, dtype=np.float32))}
