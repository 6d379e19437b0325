"""Deployments that load at once in one server process get whole models.

transformers' ``from_pretrained`` is not thread-safe (transformers#41782): two
loads in parallel threads left a masked-LM head's tied weights on the meta
device, and the fill-mask deployment answered 500 (seen in a clean-clone CI).
Every transformers load goes through ``load_pretrained``, one at a time.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from tests.llm.hf_models import tiny_bert, tiny_vit

pytest.importorskip("transformers")
pytest.importorskip("PIL")


def test_models_loaded_side_by_side_have_no_weight_left_on_the_meta_device(
    tmp_path: Path,
) -> None:
    import torch
    import transformers

    from aimass.flavors._hf_libraries import load_pretrained

    folders = [
        (tiny_bert(tmp_path / "mlm", "fill-mask"), transformers.AutoModelForMaskedLM),
        (tiny_bert(tmp_path / "ner", "token-classification"),
         transformers.AutoModelForTokenClassification),
        (tiny_vit(tmp_path / "vit"), transformers.AutoModelForImageClassification),
    ]  # fmt: skip
    for _ in range(3):
        loaded: dict[int, Any] = {}

        def load(into: dict[int, Any], index: int, folder: Path, auto: Any) -> None:
            into[index] = load_pretrained(auto, folder, local_files_only=True)

        threads = [
            threading.Thread(target=load, args=(loaded, i, *folders[i % len(folders)]))
            for i in range(6)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(loaded) == 6
        for model in loaded.values():
            tensors = [*model.named_parameters(), *model.named_buffers()]
            assert [name for name, t in tensors if t.device.type == "meta"] == []
        with torch.inference_mode():
            logits = loaded[0](input_ids=torch.tensor([[1, 2, 3]])).logits
        assert torch.isfinite(logits).all()
