"""Predictors over a checked, extracted Hugging Face directory (torch and transformers inside).

Loaded in the server process: the directory holds only data (JSON and safetensors,
checked by :mod:`aimass.flavors._hf_files`), transformers runs its own code for
the architecture the config names, never code from the directory
(``trust_remote_code=False``, ``local_files_only=True``). Encoders tokenize with
the ``tokenizers`` library directly (:mod:`aimass.flavors._hf_tokens`); the
libraries are imported once per process (:mod:`aimass.flavors._hf_libraries`).
A model loads onto the device it is given (:func:`aimass.devices.torch_device`: its
GPU, else the CPU) and says which in ``device``; its inputs go there and its outputs
come back to the CPU.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from aimass.devices import torch_device
from aimass.flavors._hf_libraries import import_libraries, load_pretrained
from aimass.flavors._hf_tokens import MAX_LENGTH, count_tokens, encode, load_tokenizer, texts

if TYPE_CHECKING:
    from pathlib import Path

    from aimass.flavors.base import Array, Batch
    from aimass.flavors.signature import Signature

__all__ = ["DEFAULT_NEW_TOKENS", "mean_pool", "texts"]

#: The default number of new tokens a generator writes for an OIP request.
DEFAULT_NEW_TOKENS = 32


def load_options(trusted: bool) -> dict[str, Any]:
    # Pickled weights (trusted only) load through torch.load(weights_only=True) in transformers.
    return {"local_files_only": True, "trust_remote_code": False, "use_safetensors": not trusted}


def mean_pool(torch: Any, states: Any, mask: Any) -> Any:
    """Token states averaged over the attention mask, L2-normalised (sentence-transformers')."""
    weights = mask.unsqueeze(-1).to(states.dtype)
    pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)


class TextModel:
    """A tokenizer and a model in eval mode, loaded offline from ``folder``.

    ``fast`` encoders (embeddings, classes) read ``tokenizer.json`` with the
    ``tokenizers`` library; generators (and a directory without ``tokenizer.json``)
    use transformers' ``AutoTokenizer`` for decoding and chat templates.
    """

    signature: Signature | None
    #: The task it serves (set by the flavor): feature-extraction, text-classification, ...
    task: str = ""
    #: Where the model runs: "cpu" or "cuda:N".
    device: str = "cpu"

    def __init__(
        self, folder: Path, signature: Signature, auto: str, trusted: bool, fast: bool = True
    ) -> None:
        torch, transformers = import_libraries()
        self.torch = torch
        self.signature = signature
        self.fast = load_tokenizer(folder) if fast else None
        if self.fast is None:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(
                folder, local_files_only=True, trust_remote_code=False
            )
            length = int(getattr(self.tokenizer, "model_max_length", 0) or 0) or MAX_LENGTH
            self.max_length = min(length, MAX_LENGTH)
        else:
            self.max_length = self.fast.truncation["max_length"] if self.fast.truncation else 512
        model_class = getattr(transformers, auto)
        self.model = load_pretrained(model_class, folder, **load_options(trusted))
        self.model.eval()
        self.device = torch_device(torch)
        if self.device != "cpu":
            self.model.to(self.device)
        self._inputs = set(inspect.signature(self.model.forward).parameters)

    def encode(self, items: list[str]) -> Any:
        """The model's inputs for ``items`` as torch tensors (padded, truncated)."""
        if self.fast is None:
            return self.tokenizer(
                items, padding=True, truncation=True, max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)  # fmt: skip
        if self.fast.truncation and self.fast.truncation["max_length"] != self.max_length:
            self.fast.enable_truncation(self.max_length)
        arrays = encode(self.fast, items)
        tensors = {k: self.torch.from_numpy(v) for k, v in arrays.items() if k in self._inputs}
        if self.device != "cpu":
            tensors = {k: v.to(self.device) for k, v in tensors.items()}
        return tensors

    def count_tokens(self, items: list[str]) -> int:
        """The tokens ``items`` make (truncated, unpadded)."""
        if self.fast is None:
            return sum(len(ids) for ids in self.encode(items)["input_ids"])
        return count_tokens(self.fast, items)

    def predict_proba(self, batch: Batch) -> Array | None:
        return None


class EmbeddingPredictor(TextModel):
    """Sentence embeddings: token states mean-pooled over the attention mask, L2-normalised
    (what sentence-transformers does for MiniLM); CLS pooling when the directory says so."""

    def __init__(self, folder: Path, signature: Signature, trusted: bool, cls: bool) -> None:
        super().__init__(folder, signature, "AutoModel", trusted)
        self.cls = cls

    def predict(self, batch: Batch) -> Array:
        torch = self.torch
        items = texts(batch)
        with torch.inference_mode():
            encoded = self.encode(items)
            states = self.model(**encoded).last_hidden_state
            if self.cls:
                pooled = torch.nn.functional.normalize(states[:, 0], p=2, dim=1)
            else:
                pooled = mean_pool(torch, states, encoded["attention_mask"])
        result: Array = pooled.float().cpu().numpy()
        return result


class ClassificationPredictor(TextModel):
    """Text classification: the label (``id2label``) and the softmax scores."""

    def __init__(self, folder: Path, signature: Signature, trusted: bool) -> None:
        super().__init__(folder, signature, "AutoModelForSequenceClassification", trusted)
        id2label = getattr(self.model.config, "id2label", None) or {}
        count = int(self.model.config.num_labels)
        self.labels = np.array([str(id2label.get(i, i)) for i in range(count)], dtype=object)

    def predict_proba(self, batch: Batch) -> Array | None:
        torch = self.torch
        with torch.inference_mode():
            logits = self.model(**self.encode(texts(batch))).logits
            scores: Array = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        return scores

    def predict(self, batch: Batch) -> Array:
        scores = self.predict_proba(batch)
        assert scores is not None
        result: Array = self.labels[scores.argmax(axis=1)]
        return result

    def predict_named(self, batch: Batch, names: Sequence[str] = ()) -> dict[str, Array]:
        """Both outputs, ``label`` and ``scores`` (the runner's ``names`` pick among them)."""
        scores = self.predict_proba(batch)
        assert scores is not None
        return {"label": self.labels[scores.argmax(axis=1)], "scores": scores}


@dataclass
class Generated:
    """How one generation ended: token counts and why it stopped."""

    prompt_tokens: int
    completion_tokens: int
    #: "stop" (end of sequence), "length" (max tokens) or "cancelled" (asked to stop).
    finish_reason: str


class GenerationPredictor(TextModel):
    """Causal language models: greedy text for OIP, streamed text for the OpenAI routes."""

    def __init__(self, folder: Path, signature: Signature, trusted: bool, new_tokens: int) -> None:
        super().__init__(folder, signature, "AutoModelForCausalLM", trusted, fast=False)
        self.new_tokens = new_tokens
        self.lock = threading.Lock()  # one generate at a time per model: torch threads are shared
        eos = self.tokenizer.eos_token_id
        self.pad_id = (
            self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos
        )
        self.eos_id = eos

    def predict(self, batch: Batch) -> Array:
        prompts = texts(batch)
        out = np.empty(len(prompts), dtype=object)
        for i, prompt in enumerate(prompts):
            pieces: list[str] = []
            self.generate(prompt, self.new_tokens, pieces.append, lambda: False)
            out[i] = "".join(pieces)
        return out

    def chat_prompt(self, messages: Sequence[Mapping[str, str]]) -> str:
        """The prompt for chat messages: the tokenizer's chat template, or ``role: content``."""
        if getattr(self.tokenizer, "chat_template", None):
            prompt: str = self.tokenizer.apply_chat_template(
                list(messages), tokenize=False, add_generation_prompt=True
            )
            return prompt
        lines = [f"{m['role']}: {m['content']}" for m in messages]
        return "\n".join([*lines, "assistant:"])

    def generate(
        self,
        prompt: str,
        max_new_tokens: int,
        on_text: Callable[[str], None],
        should_stop: Callable[[], bool],
        temperature: float | None = None,
        top_p: float | None = None,
        seed: int | None = None,
    ) -> Generated:
        """Generate up to ``max_new_tokens`` after ``prompt``, calling ``on_text`` as text is
        decoded; ``should_stop`` is asked after every token (a client that went away)."""
        torch = self.torch
        import transformers  # imported with the model (import_libraries)

        predictor = self

        tokenizer = self.tokenizer

        class Streamer(transformers.generation.BaseStreamer):  # type: ignore[misc]  # Any base
            """Decodes the tokens so far after each one and hands on the new text at once
            (a partial UTF-8 character waits for its next token)."""

            def __init__(self) -> None:
                self.ids: list[int] = []
                self.sent = 0
                self.prompt_seen = False

            @property
            def tokens(self) -> int:
                return len(self.ids)

            def put(self, value: Any) -> None:
                if not self.prompt_seen:  # generate's first call carries the prompt
                    self.prompt_seen = True
                    return
                self.ids.extend(int(i) for i in value.reshape(-1).tolist())
                text: str = tokenizer.decode(self.ids, skip_special_tokens=True)
                if text.endswith("\ufffd"):
                    return
                if len(text) > self.sent:
                    on_text(text[self.sent :])
                    self.sent = len(text)

            def end(self) -> None:
                text: str = tokenizer.decode(self.ids, skip_special_tokens=True)
                if len(text) > self.sent:
                    on_text(text[self.sent :])
                    self.sent = len(text)

        class Stop(transformers.StoppingCriteria):  # type: ignore[misc]  # Any base
            stopped = False

            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                self.stopped = self.stopped or should_stop()
                return torch.full(
                    (input_ids.shape[0],), self.stopped, dtype=torch.bool, device=input_ids.device
                )

        streamer = Streamer()
        stop = Stop()
        encoded = self.tokenizer(
            prompt, return_tensors="pt", truncation=True, max_length=predictor.max_length
        ).to(self.device)
        prompt_length = int(encoded["input_ids"].shape[1])
        config = self.model.config
        positions = getattr(config, "max_position_embeddings", None) or getattr(
            config, "n_positions", None
        )
        if isinstance(positions, int):  # past its positions a model fails, it does not stop
            max_new_tokens = max(1, min(max_new_tokens, positions - prompt_length))
        sample = temperature is not None and temperature > 0
        options: dict[str, Any] = {"do_sample": sample}
        if sample:
            options["temperature"] = temperature
            if top_p is not None:
                options["top_p"] = top_p
        with self.lock, torch.inference_mode():
            if seed is not None:
                torch.manual_seed(seed)
            self.model.generate(
                **encoded,
                max_new_tokens=max_new_tokens,
                streamer=streamer,
                stopping_criteria=transformers.StoppingCriteriaList([stop]),
                pad_token_id=self.pad_id,
                **options,
            )
        if stop.stopped:
            reason = "cancelled"
        elif streamer.tokens >= max_new_tokens:
            reason = "length"
        else:
            reason = "stop"
        return Generated(prompt_length, streamer.tokens, reason)
