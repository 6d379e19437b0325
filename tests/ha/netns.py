"""Separate hosts on one machine: network namespaces on a bridge, and a PostgreSQL of their own.

``Network`` makes a Linux bridge in the root namespace (``10.77.N.1/24``) and,
for each host, a namespace joined to it by a veth pair (``10.77.N.11``,
``.12``, ...): each host has its own address, its own loopback and its own
link, which ``cut`` takes down inside the namespace (a cable pulled) and
``mend`` brings back. ``PostgresCluster`` is a throwaway PostgreSQL (initdb,
pg_ctl, run as the ``postgres`` user) listening on the bridge address only, so
every namespace reaches it the way another machine would, over its link; the
machine's own PostgreSQL listens on 127.0.0.1 and is left alone.

Both need root (``ip netns``, ``ip link``); ``netns_unavailable()`` says why
not, for a skip.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg


def _ip(*args: str, netns: str | None = None) -> None:
    command = ["ip", *args] if netns is None else ["ip", "netns", "exec", netns, "ip", *args]
    subprocess.run(command, check=True, capture_output=True, timeout=30)


def netns_unavailable() -> str | None:
    """Why this machine cannot make namespaces and bridges (None when it can)."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is missing"
    for tool in ("initdb", "pg_ctl"):
        if shutil.which(tool) is None:
            return f"PostgreSQL's {tool} is missing (the test runs its own cluster)"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no `postgres` user to run the test's own PostgreSQL as"
    probe = f"ahp{uuid.uuid4().hex[:6]}"
    try:
        _ip("netns", "add", probe)
        _ip("link", "add", f"{probe}b", "type", "bridge")
    except (subprocess.CalledProcessError, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        return f"`ip netns`/`ip link` not permitted here (root needed): {detail.decode().strip()}"
    finally:
        with contextlib.suppress(Exception):
            _ip("link", "del", f"{probe}b")
        with contextlib.suppress(Exception):
            _ip("netns", "del", probe)
    return None


@dataclass
class Network:
    """A bridge and ``hosts`` namespaces on it; ``close()`` removes them all."""

    hosts: int = 2
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:5])
    subnet: int = field(default_factory=lambda: 100 + int(uuid.uuid4().hex[:2], 16) % 150)
    namespaces: list[str] = field(default_factory=list)

    @property
    def gateway(self) -> str:
        """The root namespace's address on the bridge (where PostgreSQL listens)."""
        return f"10.77.{self.subnet}.1"

    def address(self, i: int) -> str:
        """Host ``i``'s address."""
        return f"10.77.{self.subnet}.{11 + i}"

    @property
    def bridge(self) -> str:
        return f"ah{self.tag}br"

    def __post_init__(self) -> None:
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for i in range(self.hosts):
                ns, outer = f"ah{self.tag}h{i}", f"ah{self.tag}v{i}"
                _ip("netns", "add", ns)
                self.namespaces.append(ns)
                _ip("link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", ns)
                _ip("link", "set", outer, "master", self.bridge)
                _ip("link", "set", outer, "up")
                _ip("link", "set", "lo", "up", netns=ns)
                _ip("addr", "add", f"{self.address(i)}/24", "dev", "eth0", netns=ns)
                _ip("link", "set", "eth0", "up", netns=ns)
        except BaseException:
            self.close()
            raise

    def prefix(self, i: int) -> list[str]:
        """The command prefix that runs a program on host ``i`` (``ip netns exec`` execs it,
        so the program keeps the pid the caller sees)."""
        return ["ip", "netns", "exec", self.namespaces[i]]

    def cut(self, i: int) -> None:
        """Take host ``i``'s link down, inside its namespace: it reaches nobody, nobody it."""
        _ip("link", "set", "eth0", "down", netns=self.namespaces[i])

    def mend(self, i: int) -> None:
        """Bring host ``i``'s link back up."""
        _ip("link", "set", "eth0", "up", netns=self.namespaces[i])

    def close(self) -> None:
        """Remove the namespaces (their veth ends go with them) and the bridge."""
        for ns in self.namespaces:
            with contextlib.suppress(Exception):
                _ip("netns", "del", ns)
        self.namespaces.clear()
        with contextlib.suppress(Exception):
            _ip("link", "del", self.bridge)


class PostgresCluster:
    """A PostgreSQL of the test's own under ``root``, on ``host:port``, trust auth."""

    def __init__(self, root: Path, host: str, port: int) -> None:
        self.root, self.host, self.port = root, host, port
        self.data = root / "pgdata"
        self.sockets = root / "pgsock"
        owner = pwd.getpwnam("postgres")
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)
        for path in (root, self.sockets):
            path.mkdir(exist_ok=True)
            os.chown(path, owner.pw_uid, owner.pw_gid)
        self._as_postgres(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '{host}'\nport = {port}\n"
                f"unix_socket_directories = '{self.sockets}'\nmax_connections = 200\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                # A peer that vanished (its link cut) is noticed in seconds, not hours.
                "tcp_keepalives_idle = 2\ntcp_keepalives_interval = 1\ntcp_keepalives_count = 3\n"
            )
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write("host all all 10.77.0.0/16 trust\n")
        self._as_postgres(
            "pg_ctl", "-D", str(self.data), "-l", str(root / "postgres.log"), "-w", "start"
        )

    def _as_postgres(self, *command: str) -> None:
        tool = shutil.which(command[0])
        assert tool is not None
        done = subprocess.run(
            ["runuser", "-u", "postgres", "--", tool, *command[1:]],
            capture_output=True,
            timeout=120,
            cwd=self.root,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {done.stdout.decode()}{done.stderr.decode()}")

    @property
    def admin(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    def create_database(self, name: str) -> str:
        """A new empty database; its SQLAlchemy URL (the first server migrates it)."""
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{name}"

    def close(self) -> None:
        """Stop it at once and remove its files."""
        with contextlib.suppress(Exception):
            self._as_postgres("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def hosts(count: int = 2) -> Iterator[tuple[Network, str]]:
    """``count`` namespaces and a PostgreSQL on their bridge: (network, database URL).

    PostgreSQL's files go in a folder of their own under the system's temporary
    folder (pytest's are private to root; the server runs as ``postgres``)."""
    network = Network(count)
    pg: PostgresCluster | None = None
    try:
        deadline = time.monotonic() + 10
        while True:  # the bridge's address may take a moment to be usable
            root = Path(tempfile.mkdtemp(prefix="aimass-netns-pg-"))
            try:
                pg = PostgresCluster(root, network.gateway, 5432)
                break
            except RuntimeError:
                shutil.rmtree(root, ignore_errors=True)
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield network, pg.create_database("aimass")
    finally:
        if pg is not None:
            pg.close()
        network.close()
