"""Text to token ids with the Rust ``tokenizers`` library alone (no transformers, no torch).

Both the ONNX directories and the transformers encoders (embeddings, classes)
tokenize here: ``tokenizer.json`` is read as it is, never converted from a slow
tokenizer at load, so loading a tokenizer costs milliseconds, not an import of
transformers' tokenizer stack.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from aimass.errors import InvalidInput

if TYPE_CHECKING:
    from pathlib import Path

    from tokenizers import Tokenizer

    from aimass.flavors.base import Array, Batch

#: The longest input, in tokens, any text model here reads (longer inputs are truncated).
MAX_LENGTH = 512
#: The file holding a fast tokenizer.
TOKENIZER_FILE = "tokenizer.json"


def texts(batch: Batch) -> list[str]:
    """The text column of a batch (BYTES: bytes or str elements), as Python strings."""
    array = next(iter(batch.values())) if isinstance(batch, Mapping) else batch
    out: list[str] = []
    for item in np.asarray(array, dtype=object).reshape(-1):
        if isinstance(item, bytes | bytearray):
            try:
                out.append(bytes(item).decode("utf-8"))
            except UnicodeDecodeError:
                raise InvalidInput("text inputs must be UTF-8") from None
        elif isinstance(item, str):
            out.append(item)
        else:
            raise InvalidInput("the text input must hold strings (BYTES)")
    return out


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object file of the directory, or ``{}`` when it is missing or not an object."""
    if not path.is_file():
        return {}
    value = json.loads(path.read_text())
    return value if isinstance(value, dict) else {}


def load_tokenizer(folder: Path, max_length: int | None = None) -> Tokenizer | None:
    """The directory's fast tokenizer, truncating and padding like transformers would;
    None when the directory has no ``tokenizer.json``."""
    from tokenizers import Tokenizer

    path = folder / TOKENIZER_FILE
    if not path.is_file():
        return None
    config = read_json(folder / "tokenizer_config.json")
    if max_length is None:
        length = config.get("model_max_length")
        max_length = min(int(length), MAX_LENGTH) if isinstance(length, int) else MAX_LENGTH
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(max(1, min(max_length, MAX_LENGTH)))
    pad = config.get("pad_token")
    pad_token = pad if isinstance(pad, str) else "[PAD]"
    pad_id = tokenizer.token_to_id(pad_token)
    tokenizer.enable_padding(pad_id=pad_id or 0, pad_token=pad_token)
    return tokenizer


def encode(tokenizer: Tokenizer, items: Sequence[str]) -> dict[str, Array]:
    """Token ids, attention mask and token types of ``items`` (int64, padded to the longest)."""
    encodings = tokenizer.encode_batch(list(items))
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }


def count_tokens(tokenizer: Tokenizer, items: Sequence[str]) -> int:
    """The tokens ``items`` make, without padding (what an OpenAI ``usage`` reports)."""
    return sum(sum(e.attention_mask) for e in tokenizer.encode_batch(list(items)))
