"""The inference path's routes as the OpenAPI document describes them.

``InferenceApp`` answers /v2, /metrics and the predict route without FastAPI,
so FastAPI cannot see them. This router declares the same routes with the
wire models of ``aimass.entities.inference``, for the document only: it is
never mounted (``PlatformApp`` hands these paths to the inference path before
FastAPI routing), so its functions never run.
"""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Body, Header, Path
from fastapi.responses import PlainTextResponse

from aimass.api.deps import ProjectQuery
from aimass.api.ids import MAX_INT
from aimass.entities.errors import ErrorBody
from aimass.entities.inference import (
    InferenceError,
    InferRequest,
    InferResponse,
    ModelMetadata,
    PredictRequest,
    PredictResult,
    ServerMetadata,
)
from aimass.entities.openai import (
    ChatRequest,
    Completion,
    CompletionRequest,
    EmbeddingList,
    EmbeddingsRequest,
    OpenAIModel,
    OpenAIModelList,
)

router = APIRouter()

Name = Annotated[str, Path(description="the deployment's name")]
Version = Annotated[str, Path(description="a version number the deployment serves")]
HeaderLength = Annotated[
    int | None,
    Header(
        alias="Inference-Header-Content-Length",
        ge=0,
        le=MAX_INT,
        description="binary tensor extension: the length of the JSON header before the bytes",
    ),
]

_V2_ERRORS: dict[int, str] = {
    400: "bad input: malformed JSON, a wrong shape or datatype, a missing value",
    401: "no token, or a token that is not valid",
    403: "the token may not use this project",
    404: "no such deployment or version",
    413: "the body is over the inference size limit",
    503: "the deployment is still loading, or failed to load",
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Errors of the /v2 routes: ``{"error": "message"}``, as KServe and Triton write them."""
    return {
        status: {
            "description": _V2_ERRORS[status],
            "content": {"application/json": {"schema": InferenceError.model_json_schema()}},
        }
        for status in statuses
    }


_READ = _errors(401, 403, 404, 503)
_READY = _errors(400, 401, 403, 404)
_INFER = _errors(400, 401, 403, 404, 413, 503)

_INFER_BODY: dict[str, Any] = {
    "requestBody": {
        "content": {
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "description": (
                    "tritonclient's binary tensor extension: the JSON header "
                    "(Inference-Header-Content-Length bytes), then the raw tensors"
                ),
            }
        }
    }
}
_NO_TOKEN: dict[str, Any] = {"security": []}


def _described() -> NoReturn:
    raise AssertionError("described only: the inference path (api.inference.app) answers this")


@router.post(
    "/api/v1/deployments/{name}/predict",
    tags=["deployments"],
    responses={
        status: {"model": ErrorBody, "description": text}
        for status, text in (
            (400, "bad input; the message names the input, row and column"),
            (401, "no token, or a token that is not valid"),
            (403, "the token may not use this project"),
            (404, "no such deployment"),
            (413, "the body is over the inference size limit"),
            (415, "the body is not JSON"),
            (503, "the deployment is still loading, or failed to load"),
        )
    },
)
def predict(name: Name, body: PredictRequest, project: ProjectQuery = None) -> PredictResult:
    """Predict with a deployment: one prediction (and class probabilities) per row.

    Rows are lists in the model's input order, or records matched to the
    signature's column names (extra columns are ignored and listed).
    """
    _described()


@router.get("/v2", tags=["inference (v2)"], responses=_errors(401))
def server_metadata() -> ServerMetadata:
    """The server's name, version and protocol extensions."""
    _described()


@router.get("/v2/health/live", tags=["inference (v2)"], openapi_extra=_NO_TOKEN)
def live() -> None:
    """200 while the server runs (no token needed)."""
    _described()


@router.get("/v2/health/ready", tags=["inference (v2)"], openapi_extra=_NO_TOKEN)
def ready() -> None:
    """200 when the server is ready for requests (no token needed)."""
    _described()


@router.get("/v2/models/{name}", tags=["inference (v2)"], responses=_READ)
def model_metadata(name: Name, project: ProjectQuery = None) -> ModelMetadata:
    """A deployment's versions and its input and output tensors."""
    _described()


@router.get("/v2/models/{name}/ready", tags=["inference (v2)"], responses=_READY)
def model_ready(name: Name, project: ProjectQuery = None) -> None:
    """200 when the deployment serves a loaded version; 400 while it does not."""
    _described()


@router.post(
    "/v2/models/{name}/infer",
    tags=["inference (v2)"],
    responses=_INFER,
    openapi_extra=_INFER_BODY,
)
def infer(
    name: Name,
    body: Annotated[InferRequest, Body()],
    project: ProjectQuery = None,
    header_length: HeaderLength = None,
) -> InferResponse:
    """Run the deployment on the request's tensors (JSON, or the binary tensor extension)."""
    _described()


@router.get("/v2/models/{name}/versions/{version}", tags=["inference (v2)"], responses=_READ)
def version_metadata(name: Name, version: Version, project: ProjectQuery = None) -> ModelMetadata:
    """One served version's input and output tensors."""
    _described()


@router.get("/v2/models/{name}/versions/{version}/ready", tags=["inference (v2)"], responses=_READY)
def version_ready(name: Name, version: Version, project: ProjectQuery = None) -> None:
    """200 when this version is loaded and served."""
    _described()


@router.post(
    "/v2/models/{name}/versions/{version}/infer",
    tags=["inference (v2)"],
    responses=_INFER,
    openapi_extra=_INFER_BODY,
)
def infer_version(
    name: Name,
    version: Version,
    body: Annotated[InferRequest, Body()],
    project: ProjectQuery = None,
    header_length: HeaderLength = None,
) -> InferResponse:
    """Run this version of the deployment on the request's tensors."""
    _described()


@router.get(
    "/metrics",
    tags=["inference (v2)"],
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        **_errors(401, 403),
    },
)
def metrics() -> str:
    """Prometheus metrics of this process (text exposition format; a token on all projects)."""
    _described()


_OPENAI_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "bad input, max_tokens over the limit, or a deployment whose task does not fit"),
        (401, "no token, or a token that is not valid"),
        (403, "the token may not use this project"),
        (404, "no such deployment"),
        (408, "generation ran past the server's timeout (without stream)"),
        (413, "the body is over the inference size limit"),
        (429, "every generation slot of this server is busy"),
        (503, "the deployment is still loading, or failed to load"),
    )
}
_STREAM: dict[str, Any] = {
    "responses": {
        "200": {
            "content": {
                "text/event-stream": {
                    "schema": {"type": "string"},
                    "description": "with stream: data: <chunk JSON> events, then data: [DONE]",
                }
            }
        }
    }
}


@router.get("/v1/models", tags=["openai"], responses=_errors(401, 403))
def openai_models(project: ProjectQuery = None) -> OpenAIModelList:
    """The deployments the OpenAI-compatible routes answer (their names are the ``model``)."""
    _described()


@router.get("/v1/models/{name}", tags=["openai"], responses=_errors(401, 403, 404))
def openai_model(name: Name, project: ProjectQuery = None) -> OpenAIModel:
    """One deployment the OpenAI-compatible routes answer."""
    _described()


@router.post("/v1/embeddings", tags=["openai"], responses=_OPENAI_ERRORS)
def openai_embeddings(body: EmbeddingsRequest, project: ProjectQuery = None) -> EmbeddingList:
    """Embeddings of a feature-extraction deployment (batched with its /v2 requests)."""
    _described()


@router.post(
    "/v1/chat/completions", tags=["openai"], responses=_OPENAI_ERRORS, openapi_extra=_STREAM
)
def openai_chat(body: ChatRequest, project: ProjectQuery = None) -> Completion:
    """A text-generation deployment's answer to chat messages; streamed with ``stream``."""
    _described()


@router.post("/v1/completions", tags=["openai"], responses=_OPENAI_ERRORS, openapi_extra=_STREAM)
def openai_completions(body: CompletionRequest, project: ProjectQuery = None) -> Completion:
    """A text-generation deployment's continuation of a prompt; streamed with ``stream``."""
    _described()
