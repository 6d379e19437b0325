"""The transformers flavor without a server: detection, tasks, signatures, trust of .bin weights."""

from __future__ import annotations

import json
import re
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from tests.llm.hf_models import minilm_dir, tiny_gpt2, zip_dir

from aimass.errors import Unprocessable
from aimass.flavors.transformers import TransformersFlavor, unavailable

pytest.importorskip("transformers")

FLAVOR = TransformersFlavor()


def _load(archive: Path, trusted: bool = False) -> object:
    """Load from a copy in a folder of its own, as the reconciler's local cache does."""
    copy = archive.parent / "cache" / archive.name
    copy.parent.mkdir(exist_ok=True)
    shutil.copy(archive, copy)
    return FLAVOR.load(copy, trusted)


def test_a_sequence_classifier_answers_labels_and_scores(tmp_path: Path) -> None:
    from transformers import BertConfig, BertForSequenceClassification

    folder = tmp_path / "clf"
    folder.mkdir()
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(minilm_dir() / name, folder / name)
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, num_labels=3, id2label={0: "sport", 1: "tech", 2: "art"},
        label2id={"sport": 0, "tech": 1, "art": 2},
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(folder, safe_serialization=True)
    archive = zip_dir(folder, tmp_path / "clf.zip")

    assert FLAVOR.sniff(archive, "clf.zip")
    signature = FLAVOR.inspect(archive, trusted=False)
    assert signature is not None
    assert [(s.name, s.datatype, s.shape) for s in signature.outputs] == [
        ("label", "BYTES", [-1]), ("scores", "FP32", [-1, 3]),
    ]  # fmt: skip
    model = _load(archive)
    batch = np.array(["a goal in the last minute", "a new chip"], dtype=object)
    named = model.predict_named(batch)  # type: ignore[attr-defined]
    assert set(named["label"]) <= {"sport", "tech", "art"}
    assert np.allclose(named["scores"].sum(axis=1), 1.0, atol=1e-5)


def test_pickled_weights_load_only_when_trusted(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    folder = tiny_gpt2(tmp_path / "gpt")
    bin_folder = tmp_path / "gpt-bin"
    shutil.copytree(folder, bin_folder)
    # transformers 5 writes safetensors only; a .bin is what older checkpoints hold.
    torch.save(load_file(bin_folder / "model.safetensors"), bin_folder / "pytorch_model.bin")
    (bin_folder / "model.safetensors").unlink()
    archive = zip_dir(bin_folder, tmp_path / "gpt-bin.zip")
    with pytest.raises(Unprocessable, match=r"pickled weights .*pytorch_model\.bin"):
        FLAVOR.inspect(archive, trusted=False)
    with pytest.raises(Unprocessable, match="refused unless trusted"):
        _load(archive, trusted=False)
    assert FLAVOR.inspect(archive, trusted=True) is not None
    generator = _load(archive, trusted=True)
    text = generator.predict(np.array([b"Offline loading"], dtype=object))  # type: ignore[attr-defined]
    assert isinstance(text[0], str) and text[0]


def test_task_from_aimass_json_and_a_folder_inside_the_archive(tmp_path: Path) -> None:
    folder = tiny_gpt2(tmp_path / "model", new_tokens=3)
    # Where the author saved it from is a record, not a file the model opens: accepted.
    config = json.loads((folder / "config.json").read_text())
    config["_name_or_path"] = "/home/author/checkpoints/run-7"
    (folder / "config.json").write_text(json.dumps(config))
    archive = tmp_path / "nested.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in folder.iterdir():
            out.write(path, f"my-model/{path.name}")
    signature = FLAVOR.inspect(archive, trusted=False)
    assert signature is not None and signature.outputs[0].name == "generated_text"
    generator = _load(archive)
    assert generator.new_tokens == 3  # type: ignore[attr-defined]
    (folder / "aimass.json").write_text(json.dumps({"task": "fill-in-the-blanks"}))
    with pytest.raises(Unprocessable, match="unknown task 'fill-in-the-blanks'"):
        FLAVOR.inspect(zip_dir(folder, tmp_path / "bad-task.zip"), trusted=False)


def test_code_and_links_are_refused(tmp_path: Path) -> None:
    folder = tiny_gpt2(tmp_path / "model")
    (folder / "modeling_evil.py").write_text("import os\n")
    with pytest.raises(Unprocessable, match=r"holds code .*modeling_evil\.py"):
        FLAVOR.inspect(zip_dir(folder, tmp_path / "code.zip"), trusted=True)
    (folder / "modeling_evil.py").unlink()
    archive = zip_dir(folder, tmp_path / "slip.zip")
    with zipfile.ZipFile(archive, "a") as out:
        out.writestr("../escape.json", "{}")
    with pytest.raises(Unprocessable, match=r"unsafe member name '\.\./escape\.json'"):
        FLAVOR.inspect(archive, trusted=False)


def test_the_extra_is_reported_available_here() -> None:
    assert unavailable() is None


def test_without_the_extra_an_upload_is_refused_with_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = zip_dir(tiny_gpt2(tmp_path / "model"), tmp_path / "model.zip")
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if not installed
    problem = unavailable()
    assert problem is not None and "no module transformers" in problem
    assert FLAVOR.sniff(archive, "model.zip")  # still recognised, so the answer can say why
    with pytest.raises(Unprocessable, match=re.escape("pip install 'aimass[llm]'")):
        FLAVOR.inspect(archive, trusted=False)
