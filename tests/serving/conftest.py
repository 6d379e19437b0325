"""Fixtures for the serving tests: real models behind a real uvicorn running the InferenceApp."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pytest
from tests.conftest import ModelFiles, free_port

from aimass.api.inference import InferenceApp
from aimass.auth.entities import Principal
from aimass.errors import Unauthenticated
from aimass.flavors.base import Predictor
from aimass.plugins import default_registries
from aimass.serving import (
    ModelRepository,
    ModelRunner,
    ServedDeployment,
    ServedVersion,
)
from aimass.serving.batcher import InFlight

T = TypeVar("T")

ADMIN = "admin-secret-token"
OTHER = "viewer-of-other-project"
TOKENS = {
    ADMIN: Principal(token_id=1, name="admin", role="admin", project=None),
    OTHER: Principal(token_id=2, name="other", role="viewer", project="other"),
}
AUTH = {"Authorization": f"Bearer {ADMIN}"}
MAX_BODY = 64 * 1024
MAX_ELEMENTS = 10_000


def authenticate(secret: str | None) -> Principal:
    """A token store backed by a fixed dict."""
    principal = TOKENS.get(secret or "")
    if principal is None:
        raise Unauthenticated("invalid token")
    return principal


class BrokenPredictor:
    """A real predictor whose model fails on every call, with an internal name in the error."""

    def __init__(self, signature: Any) -> None:
        self.signature = signature

    def predict(self, batch: Any) -> Any:
        raise RuntimeError("/srv/secret/model_store/obj_0x7f00 exploded")

    def predict_proba(self, batch: Any) -> Any:
        return None


@dataclass
class Models:
    """Loaded predictors and the data they were trained on."""

    sklearn: Predictor
    onnx: Predictor
    x: np.ndarray[Any, Any]


@pytest.fixture(scope="session")
def models(model_files: ModelFiles) -> Models:
    """The sklearn (skops) and ONNX models of ``model_files``, loaded by their flavors."""
    flavors = default_registries().flavors
    return Models(
        sklearn=flavors.get("sklearn").load(model_files.skops, trusted=False),
        onnx=flavors.get("onnx").load(model_files.onnx, trusted=False),
        x=np.asarray(model_files.x),
    )


def version(
    predictor: Predictor,
    number: int,
    weight: float = 1.0,
    flavor: str = "sklearn",
    max_batch_size: int = 64,
    max_delay_ms: float = 2.0,
    model: str = "cancer",
    in_flight: InFlight | None = None,
) -> ServedVersion:
    """A served version with its own runner (closing batches on ``in_flight`` when given)."""
    runner = ModelRunner(
        predictor,
        predictor.signature,
        max_batch_size,
        max_delay_ms,
        name=f"{model}-{number}",
        in_flight=in_flight,
    )
    return ServedVersion(model, number, weight, runner, predictor.signature, flavor)


def inference_app(repository: ModelRepository) -> InferenceApp:
    """The inference app over ``repository`` with the test tokens, auth on and the test limits."""
    return InferenceApp(
        repository,
        authenticate,
        auth_enabled=True,
        max_body_bytes=MAX_BODY,
        max_tensor_elements=MAX_ELEMENTS,
        server_version="0.1.0",
    )


@dataclass
class Served:
    """A running InferenceApp, its repository and the event loop it serves on."""

    url: str
    port: int
    app: InferenceApp
    repository: ModelRepository
    loop: asyncio.AbstractEventLoop

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the server's event loop thread (as the reconciler does)."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(*args))
            except BaseException as exc:
                future.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return future.result(timeout=10)


def serve(app: InferenceApp, repository: ModelRepository) -> Iterator[Served]:
    """Serve ``app`` with uvicorn (uvloop, httptools) in a thread until the generator closes."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", ws="none", lifespan="off"
    )
    server = uvicorn.Server(config)
    holder: dict[str, asyncio.AbstractEventLoop] = {}

    def run() -> None:
        with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
            holder["loop"] = runner.get_loop()
            runner.run(server.serve())
            runner.run(repository.close())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("inference server did not start")
        time.sleep(0.01)
    try:
        yield Served(f"http://127.0.0.1:{port}", port, app, repository, holder["loop"])
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def served(models: Models) -> Iterator[Served]:
    """The inference app serving a canary sklearn deployment, ONNX, a broken and a loading one."""
    repository = ModelRepository()
    repository.put(
        ServedDeployment(
            "cancer",
            "default",
            [version(models.sklearn, 1, 0.9), version(models.sklearn, 2, 0.1)],
            "ready",
        )
    )
    repository.put(
        ServedDeployment("cancer-onnx", "default", [version(models.onnx, 1, flavor="onnx")])
    )
    repository.put(
        ServedDeployment(
            "cancer-unbatched", "default", [version(models.sklearn, 1, max_batch_size=1)]
        )
    )
    repository.put(ServedDeployment("cancer", "other", [version(models.sklearn, 7)], "ready"))
    broken = BrokenPredictor(models.sklearn.signature)
    repository.put(ServedDeployment("broken", "default", [version(broken, 1)]))
    repository.set_state("warming", "default", "loading")
    repository.set_state("bad", "default", "failed", "the model file is not a valid skops file")
    yield from serve(inference_app(repository), repository)
