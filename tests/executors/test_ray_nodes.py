"""How a job record names a Ray node: its id, its address, its operator's labels."""

from __future__ import annotations

from aimass.executors.ray_nodes import describe, labels


def test_labels_are_the_custom_resources_only() -> None:
    resources = {
        "CPU": 2.0,
        "GPU": 1.0,
        "memory": 1e9,
        "object_store_memory": 1e8,
        "node:10.0.0.7": 1.0,
        "node:__internal_head__": 1.0,
        "accelerator_type:A100": 1.0,
        "gpu-box": 1.0,
        "eu-west": 1.0,
    }
    assert labels(resources) == ["eu-west", "gpu-box"]


def test_a_node_is_named_by_short_id_address_and_labels() -> None:
    node_id = "c1c7ec92bd7f5534e55001113708b300470743bf1a8036272cfa45f8"
    assert describe(node_id, "10.0.0.7", {"CPU": 2.0, "node-a": 1.0}) == (
        "ray:c1c7ec92bd7f@10.0.0.7 (node-a)"
    )
    assert describe(node_id, None, {}) == "ray:c1c7ec92bd7f@?"
