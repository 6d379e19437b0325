"""The sandboxed model host: loads one code-bearing model file and answers predict requests.

Run only by :mod:`aimass.flavors.sandboxed`, under bubblewrap, as
``python -m aimass.flavors._host [--threads N] [--cpus LIST] [--gpus N] <flavor> <path>
<trusted 0|1>``.
It loads the file with the flavor's in-process loader (for untrusted TorchScript, after
checking every operator against the allow-list), sends one ``ready`` message
(the signature and what the evaluator needs to know), then answers requests
read from stdin on a copy of the original stdout, both in :mod:`._wire`
format. Anything the model prints goes to stderr, never onto the wire.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, BinaryIO

import aimass.flavors._wire as _wire
from aimass.errors import AimassError, InvalidInput, Unprocessable

if TYPE_CHECKING:
    from aimass.flavors.base import Array, Batch, Predictor

#: The largest request the host reads (the server caps requests well below this).
REQUEST_LIMIT = 8 * 2**30
#: The one array name of a request whose batch is a bare array, not arrays by name.
BARE = ""


def _open(flavor: str, path: str, trusted: bool) -> Predictor:
    from aimass.flavors.base import dedicate_threads, process_threads

    predictor = _load(flavor, path, trusted)
    threads = process_threads()
    if threads is not None:
        dedicate_threads(threads)  # the pools of the libraries the load imported
    return predictor


def _load(flavor: str, path: str, trusted: bool) -> Predictor:
    from pathlib import Path

    from aimass.flavors.pickle import PickleFlavor
    from aimass.flavors.sklearn import SklearnFlavor
    from aimass.flavors.torchscript import TorchPickleFlavor, TorchScriptFlavor

    file = Path(path)
    if flavor == "torchscript":
        return TorchScriptFlavor().load_in_process(file, trusted)
    if flavor == "torch-pickle":
        return TorchPickleFlavor().load_in_process(file, trusted)
    if flavor == "pickle":
        return PickleFlavor().load_in_process(file, trusted)
    if flavor == "sklearn":
        return SklearnFlavor().load_in_process(file, trusted)
    if flavor == "onnx":  # a deployment that asked for a runner process
        from aimass.flavors.onnx import OnnxFlavor

        return OnnxFlavor().load(file, trusted)
    raise Unprocessable(f"the model host does not load {flavor!r} files")


def _facts(predictor: Predictor) -> dict[str, Any]:
    """What the server needs to know without the object: signature, classes, feature names."""
    estimator = getattr(predictor, "estimator", None)
    classes = getattr(estimator, "classes_", None)
    names = getattr(estimator, "feature_names_in_", None)
    import numpy as np

    from aimass.flavors.base import running_threads

    facts: dict[str, Any] = {
        "signature": None
        if predictor.signature is None
        else predictor.signature.model_dump(mode="json"),
        "named": callable(getattr(predictor, "predict_named", None)),
        "threads": running_threads(predictor),
        "cpus": sorted(os.sched_getaffinity(0)),
        "device": str(getattr(predictor, "device", "cpu")),
        # The GPUs the server left this process (None: not restricted; "": none).
        "visible_gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    if isinstance(classes, np.ndarray) and classes.ndim == 1:
        facts["classes"] = [_wire._json_value(c) for c in classes.tolist()]
    if names is not None:
        facts["feature_names"] = [str(n) for n in names]
    return facts


def _answer(predictor: Predictor, header: Mapping[str, Any], arrays: dict[str, Array]) -> bytes:
    batch: Batch = arrays[BARE] if header.get("bare") else arrays
    op = header.get("op")
    if op == "predict":
        return _wire.encode({"ok": True}, {"result": predictor.predict(batch)})
    if op == "predict_proba":
        proba = predictor.predict_proba(batch)
        if proba is None:
            return _wire.encode({"ok": True, "none": True})
        return _wire.encode({"ok": True}, {"result": proba})
    if op == "predict_named":
        names = [str(n) for n in header.get("names", [])]
        return _wire.encode({"ok": True}, predictor.predict_named(batch, names))  # type: ignore[attr-defined]
    raise InvalidInput(f"unknown request {op!r}")


def _error(exc: BaseException) -> bytes:
    if isinstance(exc, AimassError):
        unprocessable = isinstance(exc, Unprocessable) or not isinstance(exc, InvalidInput)
        status = 422 if unprocessable else 400
        return _wire.encode({"ok": False, "status": status, "error": exc.message})
    return _wire.encode(
        {"ok": False, "status": 500, "error": f"{type(exc).__name__}: {' '.join(str(exc).split())}"}
    )


def serve(flavor: str, path: str, trusted: bool, inbox: BinaryIO, outbox: BinaryIO) -> None:
    """Load the model, send ``ready``, then answer requests until stdin closes."""
    try:
        predictor = _open(flavor, path, trusted)
        outbox.write(_wire.encode({"ok": True, "ready": _facts(predictor)}))
    except Exception as exc:
        outbox.write(_error(exc))
        outbox.flush()
        return
    outbox.flush()
    while True:
        try:
            header, arrays = _wire.decode(inbox.read, REQUEST_LIMIT)
        except EOFError:
            return
        try:
            reply = _answer(predictor, header, arrays)
        except Exception as exc:
            reply = _error(exc)
        outbox.write(reply)
        outbox.flush()


def listen(
    flavor: str, path: str, trusted: bool, socket_path: str, lock_path: str, outbox: BinaryIO
) -> None:
    """A runner process shared by a node's server workers: one model, a Unix socket.

    Holds an exclusive lock on ``lock_path`` for its whole life, so a node runs one
    runner per key; a second one started meanwhile says ``running`` and ends. It loads
    the model, listens on ``socket_path``, says ``ready`` on ``outbox``, and answers
    each connection (a worker) in its own thread, one model call at a time: every
    connection first receives the ready message, then request/reply pairs. It ends
    when no worker has been connected for :data:`IDLE_EXIT_S` seconds.
    """
    import fcntl
    import socket
    import threading
    import time

    lock = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        outbox.write(_wire.encode({"ok": True, "running": True}))
        outbox.flush()
        return
    try:
        predictor = _open(flavor, path, trusted)
        ready = _wire.encode({"ok": True, "ready": _facts(predictor)})
    except Exception as exc:
        outbox.write(_error(exc))
        outbox.flush()
        return
    with _suppress_missing():
        os.unlink(socket_path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(socket_path)
    os.chmod(socket_path, 0o600)
    server.listen(64)
    server.settimeout(0.5)
    outbox.write(ready)
    outbox.flush()
    outbox.close()
    model = threading.Lock()
    state = {"clients": 0, "idle_since": time.monotonic()}
    guard = threading.Lock()

    def client(conn: socket.socket) -> None:
        inbox = conn.makefile("rb")
        try:
            conn.sendall(ready)
            while True:
                try:
                    header, arrays = _wire.decode(inbox.read, REQUEST_LIMIT)
                except (EOFError, OSError, _wire.WireError):
                    return
                with model:
                    try:
                        reply = _answer(predictor, header, arrays)
                    except Exception as exc:
                        reply = _error(exc)
                conn.sendall(reply)
        except OSError:
            return
        finally:
            inbox.close()
            conn.close()
            with guard:
                state["clients"] -= 1
                state["idle_since"] = time.monotonic()

    while True:
        try:
            conn, _ = server.accept()
        except TimeoutError:
            with guard:
                if state["clients"] == 0 and time.monotonic() - state["idle_since"] > IDLE_EXIT_S:
                    break
            continue
        conn.settimeout(None)
        with guard:
            state["clients"] += 1
        threading.Thread(target=client, args=(conn,), daemon=True).start()
    server.close()
    with _suppress_missing():
        os.unlink(socket_path)


#: Seconds a runner process waits with no worker connected before it ends.
IDLE_EXIT_S = 10.0


def _suppress_missing() -> Any:
    import contextlib

    return contextlib.suppress(FileNotFoundError)


def main() -> None:
    """Entry point: keep the wire on a private copy of stdout, send fd 1 to stderr.

    ``--threads N`` (first, when given): the replica's CPU share, which sizes the
    model's thread pools (see :func:`aimass.flavors.base.dedicate_threads`).
    ``--cpus LIST`` (next, when given): the cores the process runs on (see
    :mod:`aimass.flavors.cpus`). ``--gpus N`` (next, when given): the model goes on the
    first of the N GPUs ``CUDA_VISIBLE_DEVICES`` leaves this process (see
    :mod:`aimass.devices`).
    """
    args = sys.argv[1:]
    threads: int | None = None
    if args[:1] == ["--threads"]:
        threads, args = int(args[1]), args[2:]
    if args[:1] == ["--cpus"]:
        from aimass.flavors.cpus import parse_cpu_list, pin

        pin(parse_cpu_list(args[1]))  # before any library starts a thread; refused: as is
        args = args[2:]
    if args[:1] == ["--gpus"]:
        from aimass.devices import give_process_gpus

        # CUDA_VISIBLE_DEVICES (set by the server) names them: here they are 0 .. N-1.
        give_process_gpus([str(i) for i in range(int(args[1]))])
        args = args[2:]
    flavor, path, trusted = args[0], args[1], args[2] == "1"
    outbox = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # prints (prim::Print, a pickle's print) must not corrupt the wire
    sys.stdout = sys.stderr
    if threads is not None:
        from aimass.flavors.base import dedicate_threads

        dedicate_threads(threads)
    if len(args) > 4 and args[3] == "--listen":
        listen(flavor, path, trusted, args[4], args[5], outbox)
        return
    serve(flavor, path, trusted, sys.stdin.buffer, outbox)


if __name__ == "__main__":
    main()
