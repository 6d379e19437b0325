"""Predictors for token classification, fill-mask and image classification.

Each answers what transformers' pipeline of the same name answers, computed
from the model's logits here (no pipeline import): entities grouped over words
("first" sub-token of a word, B-/I- tags merged), the top tokens for the one
mask, the label and scores of an image. Loaded like the other predictors
(:mod:`aimass.flavors._hf_predictors`): offline, no code from the directory.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from aimass.devices import torch_device
from aimass.errors import InvalidInput, Unprocessable
from aimass.flavors._hf_images import ImagePreparer, decode_image, image_bytes
from aimass.flavors._hf_libraries import import_libraries, load_pretrained
from aimass.flavors._hf_predictors import TextModel, load_options
from aimass.flavors._hf_tokens import encode, read_json, texts

if TYPE_CHECKING:
    from pathlib import Path

    from aimass.flavors.base import Array, Batch
    from aimass.flavors.signature import Signature


def _softmax(logits: Array) -> Array:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    out: Array = shifted / shifted.sum(axis=-1, keepdims=True)
    return out


def _labels(config: Any) -> list[str]:
    id2label = getattr(config, "id2label", None) or {}
    return [str(id2label.get(i, i)) for i in range(int(config.num_labels))]


class TokenClassificationPredictor(TextModel):
    """Named entities: ``entities`` is one JSON list per text of
    ``{"word", "label", "score", "start", "end"}`` (character offsets in the text)."""

    def __init__(self, folder: Path, signature: Signature, trusted: bool) -> None:
        super().__init__(folder, signature, "AutoModelForTokenClassification", trusted)
        if self.fast is None:
            raise Unprocessable("a token-classification directory needs its tokenizer.json")
        self.labels = _labels(self.model.config)

    def predict(self, batch: Batch) -> Array:
        items = texts(batch)
        out = np.empty(len(items), dtype=object)
        if not items:
            return out
        assert self.fast is not None
        self.fast.enable_truncation(self.max_length)
        encodings = self.fast.encode_batch(items)
        arrays = encode(self.fast, items)
        inputs = {
            k: self.torch.from_numpy(v).to(self.device)
            for k, v in arrays.items()
            if k in self._inputs
        }
        with self.torch.inference_mode():
            logits = self.model(**inputs).logits.float().cpu().numpy()
        scores = _softmax(logits)
        for row, (text, encoding) in enumerate(zip(items, encodings, strict=True)):
            out[row] = json.dumps(self._entities(text, encoding, scores[row]))
        return out

    def _entities(self, text: str, encoding: Any, scores: Array) -> list[dict[str, Any]]:
        words: list[tuple[str, float, int, int]] = []  # label, score, start, end per word
        seen: set[int] = set()
        for index, word in enumerate(encoding.word_ids):
            if word is None or encoding.special_tokens_mask[index]:
                continue
            start, end = encoding.offsets[index]
            if word in seen:  # a later piece of the word: only its end moves
                label, score, first, _ = words[-1]
                words[-1] = (label, score, first, end)
                continue
            seen.add(word)
            best = int(scores[index].argmax())
            words.append((self.labels[best], float(scores[index][best]), start, end))
        entities: list[dict[str, Any]] = []
        group: list[float] = []
        for label, score, start, end in words:
            prefix, _, kind = label.rpartition("-") if "-" in label else ("", "", label)
            if label == "O" or kind == "O":
                group = []
                continue
            current = entities[-1] if entities and group else None
            if current is not None and prefix != "B" and current["label"] == kind:
                group.append(score)
                current.update(
                    end=end, score=float(np.mean(group)), word=text[current["start"] : end]
                )
                continue
            group = [score]
            entities.append(
                {"word": text[start:end], "label": kind, "score": score, "start": start, "end": end}
            )
        return entities

    def predict_named(self, batch: Batch, names: Sequence[str] = ()) -> dict[str, Array]:
        """The one output, ``entities``."""
        return {"entities": self.predict(batch)}


class FillMaskPredictor(TextModel):
    """The ``top_k`` tokens for a text's one mask token, and their scores."""

    def __init__(self, folder: Path, signature: Signature, trusted: bool, top_k: int) -> None:
        super().__init__(folder, signature, "AutoModelForMaskedLM", trusted)
        if self.fast is None:
            raise Unprocessable("a fill-mask directory needs its tokenizer.json")
        mask = read_json(folder / "tokenizer_config.json").get("mask_token")
        self.mask_token = mask if isinstance(mask, str) else "[MASK]"
        mask_id = self.fast.token_to_id(self.mask_token)
        if mask_id is None:
            raise Unprocessable(f"the tokenizer has no mask token {self.mask_token!r}")
        self.mask_id = mask_id
        self.top_k = top_k

    def predict_named(self, batch: Batch, names: Sequence[str] = ()) -> dict[str, Array]:
        """``tokens`` (the top tokens, best first) and their ``scores``, one row per text."""
        items = texts(batch)
        k = self.top_k
        tokens = np.empty((len(items), k), dtype=object)
        scores = np.zeros((len(items), k), dtype=np.float32)
        if not items:
            return {"tokens": tokens, "scores": scores}
        assert self.fast is not None
        encoded = self.encode(items)
        ids = encoded["input_ids"].cpu().numpy()
        positions = []
        for row in range(len(items)):
            found = np.flatnonzero(ids[row] == self.mask_id)
            if len(found) != 1:
                raise InvalidInput(
                    f"text {row} has {len(found)} mask tokens ({self.mask_token!r}); a fill-mask "
                    "model fills exactly one per text"
                )
            positions.append(int(found[0]))
        with self.torch.inference_mode():
            logits = self.model(**encoded).logits.float().cpu().numpy()
        for row, position in enumerate(positions):
            probabilities = _softmax(logits[row, position])
            best = np.argsort(-probabilities)[:k]
            scores[row] = probabilities[best]
            tokens[row] = [self.fast.decode([int(i)]).strip() for i in best]
        return {"tokens": tokens, "scores": scores}

    def predict(self, batch: Batch) -> Array:
        return self.predict_named(batch)["tokens"]


class ImageClassificationPredictor:
    """PNG/JPEG bytes in (``image``), the label (``id2label``) and softmax scores out."""

    task = "image-classification"

    def __init__(self, folder: Path, signature: Signature, trusted: bool) -> None:
        torch, transformers = import_libraries()
        self.torch = torch
        self.signature: Signature | None = signature
        self.prepare = ImagePreparer(read_json(folder / "preprocessor_config.json"))
        self.model = load_pretrained(
            transformers.AutoModelForImageClassification, folder, **load_options(trusted)
        )
        self.model.eval()
        #: Where the model runs: its GPU (``aimass.devices``), else "cpu".
        self.device = torch_device(torch)
        if self.device != "cpu":
            self.model.to(self.device)
        self.labels = np.array(_labels(self.model.config), dtype=object)

    def predict_proba(self, batch: Batch) -> Array | None:
        array = next(iter(batch.values())) if isinstance(batch, Mapping) else batch
        images = [decode_image(image_bytes(item)) for item in np.asarray(array, dtype=object).flat]
        if not images:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        pixels = self.torch.from_numpy(self.prepare(images)).to(self.device)
        with self.torch.inference_mode():
            logits = self.model(pixel_values=pixels).logits
            scores: Array = self.torch.softmax(logits.float(), dim=-1).cpu().numpy()
        return scores

    def predict(self, batch: Batch) -> Array:
        return self.predict_named(batch)["label"]

    def predict_named(self, batch: Batch, names: Sequence[str] = ()) -> dict[str, Array]:
        """``label`` and ``scores``."""
        scores = self.predict_proba(batch)
        assert scores is not None
        return {"label": self.labels[scores.argmax(axis=1)], "scores": scores}
