"""The BentoML service, with or without adaptive batching (BentoML 1.4 service API).

    BENTOML_HOME=benchmarks/serving/work/bentoml BENCH_MODEL=lr BENCH_BATCHING=1 \\
        bentoml serve servers.bentoml_service:Predictor --port 3000

The models come from the BentoML model store that models.py filled
(``bentoml.sklearn.save_model`` for the LogisticRegression, a
``bentoml.models.create`` entry holding the torch module for the MLPs).

POST /predict {"inputs": [[30 floats], ...]} -> a JSON array (labels for the
LogisticRegression, logits for the MLPs). With BENCH_BATCHING=1 the API is
``batchable`` (max_batch_size 64, BentoML's default max_latency_ms), so
concurrent one-row requests are merged along dimension 0.
"""

from __future__ import annotations

import os

import bentoml
import numpy as np

MODEL = os.environ.get("BENCH_MODEL", "lr")
BATCHING = os.environ.get("BENCH_BATCHING", "0") == "1"
MAX_BATCH_SIZE = int(os.environ.get("BENCH_MAX_BATCH_SIZE", "64"))


@bentoml.service(workers=1, traffic={"timeout": 60})
class Predictor:
    def __init__(self) -> None:
        import torch

        torch.set_num_threads(1)
        if MODEL == "lr":
            self.model = bentoml.sklearn.load_model(f"{MODEL}:latest")
        else:
            entry = bentoml.models.get(f"{MODEL}:latest")
            self.model = torch.load(entry.path_of("model.pt"), weights_only=False)
            self.model.eval()
        self.torch = torch

    @bentoml.api(batchable=BATCHING, batch_dim=0, max_batch_size=MAX_BATCH_SIZE)
    def predict(self, inputs: np.ndarray) -> np.ndarray:
        x = np.asarray(inputs, dtype=np.float32)
        if MODEL == "lr":
            return self.model.predict(x)
        with self.torch.inference_mode():
            return self.model(self.torch.from_numpy(x)).numpy()
