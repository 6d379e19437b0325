"""Hugging Face models served end to end: MiniLM embeddings through OIP and the openai client,
a tiny GPT-2 streamed through chat completions, limits, and the refusals at upload.

One server for the module (SQLite; the store is not what is tested). Nothing
downloads: every socket the process opens while the module runs must be loopback.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from tests.conftest import LiveServer, free_port, start_server
from tests.llm.hf_models import SENTENCES, minilm_dir, tiny_gpt2, zip_dir

from aimass.config import Settings

pytest.importorskip("transformers")
openai = pytest.importorskip("openai")

MAX_TOKENS = 600


@pytest.fixture(scope="module", autouse=True)
def loopback_only() -> Iterator[list[object]]:
    """Fail the module if anything connects to an address that is not loopback."""
    outside: list[object] = []
    original = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and host not in ("127.0.0.1", "::1", "localhost"):
            outside.append(address)
            raise OSError(f"test forbids a connection to {address!r}")
        return original(self, address)

    socket.socket.connect = connect  # type: ignore[method-assign]
    try:
        yield outside
    finally:
        socket.socket.connect = original  # type: ignore[method-assign]
    assert not outside, f"something reached beyond loopback: {outside}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("llm")
    settings = Settings(
        home=home / "home", artifacts=str(home / "artifacts"), port=free_port(),
        tune_gc=False, jobs=False, reconcile_interval=0.1, llm_max_tokens=MAX_TOKENS,
        llm_max_streams=2,
    )  # fmt: skip
    yield from start_server(settings)


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[Any]:
    import aimass

    with aimass.Client(url=server.url, token=server.admin_token) as c:
        yield c


@pytest.fixture(scope="module")
def oai(server: LiveServer) -> Iterator[Any]:
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.admin_token, max_retries=0) as c:
        yield c


@pytest.fixture(scope="module")
def minilm(client: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    archive = zip_dir(minilm_dir(), tmp_path_factory.mktemp("minilm") / "minilm.zip")
    version = client.models.upload("minilm", archive)
    assert version.flavor == "transformers"
    client.deployments.create("minilm", version=version.version)
    client.deployments.wait_ready("minilm", timeout=90)
    return "minilm"


@pytest.fixture(scope="module")
def gpt(client: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("gpt")
    archive = zip_dir(tiny_gpt2(folder / "model"), folder / "tiny-gpt2.zip")
    client.models.upload("tiny-gpt2", archive)
    client.deployments.create("tiny-gpt2", version=1)
    client.deployments.wait_ready("tiny-gpt2", timeout=60)
    return "tiny-gpt2"


def _reference(sentences: list[str]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_dir()), device="cpu", local_files_only=True)
    return np.asarray(model.encode(sentences, normalize_embeddings=True))


def test_minilm_embeddings_match_sentence_transformers_over_oip_and_openai(
    server: LiveServer, minilm: str, oai: Any
) -> None:
    sentences = [*SENTENCES, "héllo wörld, ünïcode too"]
    reference = _reference(sentences)
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(sentences)],
                        "data": sentences}]}  # fmt: skip
    answer = httpx.post(
        f"{server.url}/v2/models/{minilm}/infer", json=body,
        headers={"Authorization": f"Bearer {server.admin_token}"}, timeout=60,
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    out = answer.json()["outputs"][0]
    assert out["name"] == "embedding" and out["shape"] == [len(sentences), 384]
    oip = np.asarray(out["data"], dtype=np.float32).reshape(len(sentences), 384)
    assert (np.sum(oip * reference, axis=1) >= 0.999).all()

    created = oai.embeddings.create(model=minilm, input=sentences)  # base64 on the wire
    vectors = np.asarray([d.embedding for d in created.data], dtype=np.float32)
    assert vectors.shape == (len(sentences), 384) and created.usage.prompt_tokens > 0
    assert (np.sum(vectors * reference, axis=1) >= 0.999).all()
    floats = oai.embeddings.create(model=minilm, input="one", encoding_format="float")
    assert len(floats.data[0].embedding) == 384
    assert [m.id for m in oai.models.list().data] == [minilm]
    assert oai.models.retrieve(minilm).owned_by == "default"


def test_embeddings_of_a_generator_and_chat_of_an_encoder_are_clear_400s(
    minilm: str, gpt: str, oai: Any
) -> None:
    with pytest.raises(openai.BadRequestError, match="needs a feature-extraction model"):
        oai.embeddings.create(model=gpt, input="x")
    with pytest.raises(openai.BadRequestError, match="needs a text-generation model"):
        oai.chat.completions.create(model=minilm, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.NotFoundError, match="unknown model"):
        oai.embeddings.create(model="nothing-here", input="x")


def test_chat_completion_streams_tokens_as_they_are_generated(gpt: str, oai: Any) -> None:
    started = time.perf_counter()
    stream = oai.chat.completions.create(
        model=gpt, messages=[{"role": "user", "content": "Tell me about streams"}],
        max_tokens=200, stream=True,
    )  # fmt: skip
    arrivals: list[float] = []
    pieces: list[str] = []
    reasons = []
    for chunk in stream:
        choice = chunk.choices[0]
        if choice.delta.content:
            arrivals.append(time.perf_counter() - started)
            pieces.append(choice.delta.content)
        reasons.append(choice.finish_reason)
    total = time.perf_counter() - started
    assert len(pieces) >= 50, pieces  # one chunk a token, not one answer at the end
    assert arrivals[0] < total / 2 and arrivals[-1] - arrivals[0] > 0
    assert reasons[-1] == "length"

    whole = oai.completions.create(model=gpt, prompt="The quick brown", max_tokens=5)
    assert whole.choices[0].text and whole.usage.completion_tokens == 5


def test_limits_answer_clear_4xx(gpt: str, oai: Any, server: LiveServer) -> None:
    with pytest.raises(openai.BadRequestError, match="over this server's limit of 600"):
        oai.chat.completions.create(
            model=gpt, messages=[{"role": "user", "content": "x"}], max_tokens=MAX_TOKENS + 1
        )
    with pytest.raises(openai.BadRequestError, match="messages: List should have at least 1"):
        oai.chat.completions.create(model=gpt, messages=[])
    with (
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0) as wrong,
        pytest.raises(openai.AuthenticationError),
    ):
        wrong.models.list()


def _metric(server: LiveServer, name: str) -> float:
    text = httpx.get(
        f"{server.url}/metrics", headers={"Authorization": f"Bearer {server.admin_token}"}
    ).text
    match = re.search(rf'^{name}\{{[^}}]*deployment="tiny-gpt2"[^}}]*\}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def test_a_client_that_goes_away_stops_generation(gpt: str, server: LiveServer) -> None:
    before = _metric(server, "aimass_generation_tokens_total")
    body = {"model": gpt, "prompt": "Offline", "max_tokens": MAX_TOKENS, "stream": True}
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    url = f"{server.url}/v1/completions"
    with (
        httpx.Client(timeout=30) as http,
        http.stream("POST", url, json=body, headers=headers) as answer,
    ):
        assert answer.status_code == 200
        got = [line for line, _ in zip(answer.iter_lines(), range(6), strict=False) if line]
    # Leaving the block closed the connection after a few tokens.
    deadline = time.monotonic() + 20
    while (
        _metric(server, "aimass_generation_streams") > 0
        or _metric(server, "aimass_generation_tokens_total") == before
    ):
        assert time.monotonic() < deadline, "generation did not stop"
        time.sleep(0.05)
    generated = _metric(server, "aimass_generation_tokens_total") - before
    assert got and 0 < generated < MAX_TOKENS / 2, generated
    assert _metric(server, "aimass_generation_time_to_first_token_seconds_count") >= 1
    assert _metric(server, "aimass_generation_queue_length") == 0


def _fake_dir(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True)
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    weights = struct.pack("<Q", len(header)) + header + b"\0\0\0\0"
    base = {
        "config.json": json.dumps({"architectures": ["BertModel"], "hidden_size": 4}).encode(),
        "model.safetensors": weights,
    }
    for name, data in {**base, **files}.items():
        (folder / name).write_bytes(data)
    return zip_dir(folder, folder.with_suffix(".zip"))


@pytest.mark.parametrize(
    ("files", "why"),
    [
        (
            {
                "config.json": json.dumps(
                    {"architectures": ["BertModel"], "auto_map": {"AutoModel": "m.Model"}}
                ).encode()
            },
            "sets 'auto_map'.*trust_remote_code",
        ),
        ({"pytorch_model.bin": b"\x80\x04K\x01."}, "pickled weights.*refused unless trusted"),
        (
            {"tokenizer_config.json": json.dumps({"vocab_file": "../../etc/passwd"}).encode()},
            "vocab_file.*outside the model directory",
        ),
        (
            {"tokenizer_config.json": json.dumps({"vocab_file": "/etc/passwd"}).encode()},
            "vocab_file.*outside the model directory",
        ),
    ],
    ids=["trust-remote-code", "pickled-bin", "tokenizer-dotdot", "tokenizer-absolute"],
)
def test_unsafe_directories_are_refused_with_422_saying_why(
    client: Any, server: LiveServer, tmp_path: Path, files: dict[str, bytes], why: str
) -> None:
    archive = _fake_dir(tmp_path / "model", files)
    with archive.open("rb") as data:
        answer = httpx.post(
            f"{server.url}/api/v1/models/unsafe/versions",
            headers={"Authorization": f"Bearer {server.admin_token}"},
            files={"file": ("model.zip", data)}, data={"meta": json.dumps({"trusted": False})},
            timeout=30,
        )  # fmt: skip
    assert answer.status_code == 422, answer.text
    assert re.search(why, answer.json()["error"]["message"]), answer.text


def test_a_generation_over_the_stream_slots_is_a_429(gpt: str, server: LiveServer) -> None:
    body = {"model": gpt, "prompt": "Slots", "max_tokens": MAX_TOKENS, "stream": True}
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    url = f"{server.url}/v1/completions"
    with (
        httpx.Client(timeout=30) as first,
        httpx.Client(timeout=30) as second,
        first.stream("POST", url, json=body, headers=headers) as one,
        second.stream("POST", url, json=body, headers=headers) as two,
    ):
        # Both slots (llm_max_streams=2) are held while their generations run.
        assert (one.status_code, two.status_code) == (200, 200)
        third = httpx.post(url, json={**body, "stream": False}, headers=headers, timeout=30)
        assert third.status_code == 429, third.text
        assert "generation slots" in third.json()["error"]["message"]
