"""A Ray that aimass starts itself (no ``--ray-address``) listens on loopback only (issue 19)."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import psutil
import pytest

from aimass.executors.ray import RayExecutor, local_ray_options

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    # "::ffff:127.0.0.1" is loopback too; Python 3.11's is_loopback does not say so.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _listening_beyond_loopback() -> list[str]:
    """``name pid ip:port`` of every socket this process tree listens on outside loopback."""
    me = psutil.Process()
    found = []
    for proc in [me, *me.children(recursive=True)]:
        try:
            conns = proc.net_connections(kind="inet")
            name = proc.name()
        except psutil.Error:
            continue
        for conn in conns:
            if conn.status == psutil.CONN_LISTEN and not _is_loopback(conn.laddr.ip):
                found.append(f"{name} {proc.pid} {conn.laddr.ip}:{conn.laddr.port}")
    return found


def test_local_ray_options_keep_the_session_under_the_servers_home(tmp_path: Path) -> None:
    home = Path("/tmp") / f"aimass-t{tmp_path.name[-6:]}"  # short: Ray's socket paths
    options = local_ray_options(home / "ray")
    assert options["_node_ip_address"] == "127.0.0.1" and options["include_dashboard"] is False
    assert options["_temp_dir"] == str(home / "ray") and (home / "ray").stat().st_mode & 0o077 == 0
    long = local_ray_options(tmp_path / ("x" * 60) / "ray")  # too long for a socket path
    assert len(long["_temp_dir"]) < 40 and Path(long["_temp_dir"]).is_dir()


def test_a_local_ray_started_by_aimass_listens_on_loopback_only(tmp_path: Path) -> None:
    if ray.is_initialized():
        ray.shutdown()
    executor_home = Path("/tmp") / f"ar-{tmp_path.name[-8:]}"
    executor = RayExecutor({}, temp_dir=executor_home)
    try:
        assert executor._owns_ray
        assert _listening_beyond_loopback() == []
        # Ray's token is the server's, owner-only, and Ray uses it: a task runs.
        token = Path(os.environ["RAY_AUTH_TOKEN_PATH"])
        assert token.parent == executor_home and token.stat().st_mode & 0o077 == 0
        assert ray.get(ray.remote(lambda: 41 + 1).remote(), timeout=60) == 42
    finally:
        executor.close()
