"""The README runs: every shell and Python block of its walkthrough, in order, on a fresh server.

The sections a new user follows (Quick start, First five minutes, The CLI, Serving,
Jobs) are read from README.md; each ```bash block runs in bash (``set -e``), each
```python block in this interpreter, all in one working folder against one
``aimass server --demo`` started here, as ``make run`` does, with ``HOME`` in a
temporary folder (so ``~/.aimass/token`` is that server's). The README's
``http://127.0.0.1:8080`` is replaced by the test server's address. A Python block
whose first line is ``# NAME.py`` is a file the next blocks use: it is written, not
run. A block that cannot run here has the marker line
``<!-- readme-test: not run (why) -->`` just above it, in the README itself.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from conftest import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

README = Path(__file__).resolve().parents[2] / "README.md"
SECTIONS = ("Quick start", "First five minutes", "The CLI", "Serving", "Jobs")
MARKER = "<!-- readme-test: not run"
README_URL = "http://127.0.0.1:8080"


@dataclass(frozen=True)
class Block:
    section: str
    language: str
    code: str
    line: int
    #: Why it does not run, from the marker above it; None: it runs.
    skipped: str | None

    @property
    def id(self) -> str:
        return f"{self.section.split(':')[0].lower().replace(' ', '-')}-line{self.line}"


def readme_blocks(text: str) -> list[Block]:
    """The bash and python blocks of the walkthrough's sections, in order."""
    blocks: list[Block] = []
    section = ""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("## "):
            section = line[3:].strip()
        fence = re.fullmatch(r"```(bash|python)\s*", line)
        if fence and section.startswith(SECTIONS):
            end = lines.index("```", index + 1)
            before = lines[index - 1] if index else ""
            skipped = before[len(MARKER) :].strip(" ()->") if before.startswith(MARKER) else None
            code = "\n".join(lines[index + 1 : end]) + "\n"
            blocks.append(Block(section, fence.group(1), code, index + 1, skipped))
            index = end
        index += 1
    return blocks


BLOCKS = readme_blocks(README.read_text())


@dataclass
class Walkthrough:
    url: str
    env: dict[str, str]
    workdir: Path


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walkthrough]:
    """`aimass server --demo` on a fresh home, and a working folder with `.venv` in it."""
    root = tmp_path_factory.mktemp("readme")
    home, workdir = root / "home", root / "work"
    home.mkdir()
    workdir.mkdir()
    (workdir / ".venv").symlink_to(Path(sys.prefix))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIMASS_")}
    env |= {
        "HOME": str(home),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "AIMASS_URL": url,
        "NO_COLOR": "1",
        "COLUMNS": "100",
    }
    server_env = {**env, "AIMASS_PORT": str(port), "AIMASS_HOST": "127.0.0.1"}
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "aimass.cli", "server", "--demo"],
        env=server_env,
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_until_live(process, url, root / "server.log")
        token = (home / ".aimass" / "token").read_text().strip()
        for model in ("iris-classifier", "breast-cancer-onnx"):  # the demo's, loading
            _wait_until_live(process, f"{url}/v2/models/{model}", root / "server.log", token)
        yield Walkthrough(url, env, workdir)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _wait_until_live(
    process: subprocess.Popen[bytes], url: str, log: Path, token: str = ""
) -> None:
    """Until ``url/v2/health/live`` (a server) or ``url/ready`` (a model) answers 200."""
    probe = f"{url}/ready" if token else f"{url}/v2/health/live"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    deadline = time.monotonic() + 240  # the demo trains and deploys two models first
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited at start:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(probe, headers=headers).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the server did not start:\n{log.read_text()[-3000:]}")


def test_the_walkthrough_has_blocks_of_every_section() -> None:
    found = {block.section.split(":")[0] for block in BLOCKS}
    assert {section for section in SECTIONS if any(f.startswith(section) for f in found)} == set(
        SECTIONS
    )
    for block in BLOCKS:
        assert block.skipped is None or block.skipped, f"line {block.line}: say why it is not run"


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_readme_block_runs(block: Block, walkthrough: Walkthrough) -> None:
    if block.skipped is not None:
        pytest.skip(f"README line {block.line}: {block.skipped}")
    address = walkthrough.url.removeprefix("http://")
    code = block.code.replace(README_URL, walkthrough.url).replace("127.0.0.1:8080", address)
    if block.language == "python":
        first = code.splitlines()[0]
        named = re.fullmatch(r"# (\w+\.py)", first)
        if named:  # a file the next blocks use
            (walkthrough.workdir / named.group(1)).write_text(code)
            return
        command = [sys.executable, "-c", code]
    else:
        command = ["bash", "-e", "-o", "pipefail", "-c", code]
    done = _run_in_own_group(command, walkthrough)
    said = f"README line {block.line}:\n--- stdout\n{done.stdout[-4000:]}\n--- stderr\n"
    said += done.stderr[-4000:]
    assert done.returncode == 0, said
    assert "Traceback" not in done.stdout + done.stderr, said
    assert '"error": {' not in done.stdout and '{"error":' not in done.stdout, said


def _run_in_own_group(
    command: list[str], walkthrough: Walkthrough
) -> subprocess.CompletedProcess[str]:
    """Run a block in its own process group; whatever it started dies with it.

    A block that hangs (or starts a server with worker processes) must not leave
    processes behind: a timed-out block once left a two-worker server on port 8080
    for an hour. The group is killed on a timeout and after the block ends.
    """
    process = subprocess.Popen(
        command,
        cwd=walkthrough.workdir,
        env=walkthrough.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=420)
    except subprocess.TimeoutExpired:
        _kill_group(process.pid)
        stdout, stderr = process.communicate()
        raise AssertionError(
            f"the block ran past 420 s:\n--- stdout\n{stdout[-4000:]}\n--- stderr\n{stderr[-4000:]}"
        ) from None
    finally:
        _kill_group(process.pid)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _kill_group(group: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)


def test_the_tune_example_ran_two_trials_at_once(walkthrough: Walkthrough) -> None:
    """The Jobs section's tune job (parallelism 2 on the CPUs it leaves) overlapped trials."""
    token = (Path(walkthrough.env["HOME"]) / ".aimass" / "token").read_text().strip()
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=walkthrough.url, headers=auth) as api:
        tunes = api.get("/api/v1/jobs", params={"kind": "tune"}).json()
        if not tunes:
            pytest.skip("the Jobs section's blocks did not run")
        trials = api.get("/api/v1/jobs", params={"parent_id": tunes[0]["id"]}).json()
    spans = sorted(
        (datetime.fromisoformat(t["started_at"]), datetime.fromisoformat(t["finished_at"]))
        for t in trials
        if t["started_at"] and t["finished_at"]
    )
    assert len(spans) >= 2, trials
    overlapping = [a for a, b in itertools.pairwise(spans) if b[0] < a[1]]
    assert overlapping, f"no two trials ran at once: {spans}"
