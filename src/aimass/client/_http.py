"""The SDK's one HTTP session: auth, error mapping, streamed uploads and downloads.

Every non-2xx answer becomes the ``aimass.errors`` class the server named, so
SDK users catch the same exceptions the services raise.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import unquote

import httpx

from aimass.errors import ERRORS_BY_CODE, AimassError, ChecksumMismatch, Unavailable

Progress = Callable[[int, int], None]
"""A transfer callback: ``progress(bytes_done, bytes_total)``; total is 0 when unknown."""

QueryValue = str | int | float | bool | None
Query = Mapping[str, QueryValue | Sequence[str]]

PAGE_SIZE = 1000
_CHUNK = 1024 * 1024
_STATUS_TO_ERROR: dict[int, type[AimassError]] = {
    cls.status: cls for cls in ERRORS_BY_CODE.values() if cls.status != 500
}


class ServerUnreachable(AimassError):
    """No server answered at the configured URL (connection refused or timed out)."""

    code = "unreachable"
    status = 0


def _server_error(response: httpx.Response, had_token: bool) -> AimassError:
    """The ``aimass.errors`` exception for a non-2xx answer, carrying its request id."""
    code: str | None = None
    message: str | None = None
    request_id = response.headers.get("x-request-id")
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        code = error.get("code") if isinstance(error.get("code"), str) else None
        message = error.get("message") if isinstance(error.get("message"), str) else None
        request_id = error.get("request_id") or request_id
    cls = ERRORS_BY_CODE.get(code or "") or _STATUS_TO_ERROR.get(response.status_code, AimassError)
    if not message:
        text = response.text.strip() if response.status_code < 500 else ""
        message = f"server answered {response.status_code} {response.reason_phrase}".rstrip()
        if text:
            message += f": {text[:200]}"
    if cls.status == 401 and not had_token:
        message += (
            " (no token was given: pass --token, set AIMASS_TOKEN, or put it in "
            "~/.aimass/token; the server's admin token is in its own ~/.aimass/token)"
        )
    exc = cls(message)
    exc.status = response.status_code
    if isinstance(exc, Unavailable):
        retry_after = response.headers.get("retry-after", "")
        exc.retry_after = int(retry_after) if retry_after.isdigit() else None
    exc.request_id = request_id  # type: ignore[attr-defined]
    return exc


class _ProgressReader:
    """A binary file that reports each read to a progress callback (httpx streams it)."""

    def __init__(self, file: IO[bytes], total: int, progress: Progress | None) -> None:
        self._file = file
        self._total = total
        self._done = 0
        self._progress = progress
        self.name = getattr(file, "name", "upload")

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        self._done += len(chunk)
        if self._progress is not None and chunk:
            self._progress(self._done, self._total)
        return chunk

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._file.seek(offset, whence)
        self._done = position
        return position

    def tell(self) -> int:
        return self._file.tell()

    def fileno(self) -> int:
        return self._file.fileno()


_FILENAME_STAR = re.compile(r"filename\*\s*=\s*(?:UTF-8|utf-8)''([^;]+)")
_FILENAME = re.compile(r'filename\s*=\s*"?([^";]+)"?')


def attachment_filename(response: httpx.Response) -> str | None:
    """The file name in ``Content-Disposition``, reduced to a safe base name."""
    header = response.headers.get("content-disposition", "")
    match = _FILENAME_STAR.search(header)
    raw = unquote(match.group(1)) if match else None
    if raw is None:
        plain = _FILENAME.search(header)
        raw = plain.group(1) if plain else None
    if raw is None:
        return None
    name = raw.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if name in ("", ".", "..") or "\x00" in name:
        return None
    return name


class HttpSession:
    """One ``httpx.Client`` bound to a server, a token and a project."""

    def __init__(
        self,
        url: str,
        token: str | None,
        project: str,
        timeout: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        from aimass._version import __version__

        self.url = url.rstrip("/")
        self.project = project
        self.timeout = timeout
        self.has_token = bool(token)
        headers = {"User-Agent": f"aimass-client/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )
        # Big transfers may make the server think for a while after the last byte.
        self._transfer_timeout = httpx.Timeout(timeout, read=max(timeout * 10, 600.0))

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def scoped(self, params: Query | None = None) -> dict[str, Any]:
        """Query parameters with ``project`` added, for project-scoped routes."""
        merged: dict[str, Any] = {"project": self.project}
        for key, value in (params or {}).items():
            if value is not None:
                merged[key] = value
        return merged

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ServerUnreachable(
                f"the aimass server at {self.url} is not reachable ({exc}); "
                "start one with `aimass server` or point --url / AIMASS_URL at a running one"
            ) from exc
        except httpx.TimeoutException as exc:
            raise AimassError(
                f"the aimass server at {self.url} did not answer in time ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise AimassError(f"request to the aimass server at {self.url} failed: {exc}") from exc

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.is_success:
            return response
        if response.is_stream_consumed is False:
            response.read()
        raise _server_error(response, self.has_token)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: object = None,
    ) -> httpx.Response:
        """Send one request and return the 2xx answer, or raise the server's error."""
        with self._errors():
            response = self._client.request(method, path, params=params, json=json_body)
        return self._check(response)

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Like ``request``, with any httpx keyword (``content``, ``json``, ``params``)."""
        with self._errors():
            response = self._client.request(method, path, **kwargs)
        return self._check(response)

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET a JSON document."""
        return self.request("GET", path, params=params).json()

    def get_all(self, path: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        """GET every page of a list route (``limit``/``offset``) as one list."""
        items: list[Any] = []
        offset = 0
        while True:
            page_params = {**(params or {}), "limit": PAGE_SIZE, "offset": offset}
            page = self.request("GET", path, params=page_params).json()
            if not isinstance(page, list):
                raise AimassError(f"expected a list from {path}, got {type(page).__name__}")
            items.extend(page)
            if len(page) < PAGE_SIZE:
                return items
            offset += len(page)

    def upload(
        self,
        path: str,
        file: Path,
        meta: Mapping[str, object],
        *,
        params: Mapping[str, Any] | None = None,
        progress: Progress | None = None,
    ) -> Any:
        """POST ``file`` (streamed, never read whole) and ``meta`` JSON as multipart."""
        file = Path(file)
        total = file.stat().st_size
        with file.open("rb") as handle:
            reader = _ProgressReader(handle, total, progress)
            files = {"file": (file.name, cast(IO[bytes], reader), "application/octet-stream")}
            data = {"meta": json.dumps(dict(meta))}
            with self._errors():
                response = self._client.post(
                    path, params=params, files=files, data=data, timeout=self._transfer_timeout
                )
        return self._check(response).json()

    def download(
        self,
        path: str,
        dest: str | Path,
        *,
        default_name: Callable[[], str],
        params: Mapping[str, Any] | None = None,
        progress: Progress | None = None,
        verify: bool = True,
    ) -> Path:
        """Stream a GET to ``dest``: a file, or a folder (existing, or ending in ``/``).

        With ``verify``, the bytes must hash to the ``X-Aimass-Sha256`` header, or
        the partial file is removed and :class:`ChecksumMismatch` raised.
        """
        as_folder = str(dest).endswith(("/", os.sep))
        dest = Path(dest)
        if as_folder:
            dest.mkdir(parents=True, exist_ok=True)
        with (
            self._errors(),
            self._client.stream(
                "GET",
                path,
                params=params,
                # Identity, so Content-Length counts the file's own bytes for progress.
                headers={"Accept-Encoding": "identity"},
                timeout=self._transfer_timeout,
            ) as response,
        ):
            self._check(response)
            if dest.is_dir():
                dest = dest / (attachment_filename(response) or default_name())
            dest.parent.mkdir(parents=True, exist_ok=True)
            expected = response.headers.get("x-aimass-sha256")
            total = int(response.headers.get("content-length") or 0)
            partial = dest.with_name(f".{dest.name}.part")
            digest = hashlib.sha256()
            done = 0
            try:
                with partial.open("wb") as out:
                    for chunk in response.iter_bytes(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, total)
                actual = digest.hexdigest()
                if verify and expected and expected.lower() != actual:
                    raise ChecksumMismatch(
                        f"downloaded bytes of {path} hash to {actual}, "
                        f"but the server announced {expected}; the partial file was removed"
                    )
                partial.replace(dest)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
        return dest
