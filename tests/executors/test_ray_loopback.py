"""A Ray that aimass starts itself (no ``--ray-address``) listens on loopback only (issue 19)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import psutil
import pytest

from aimass.executors.ray import RayExecutor, local_ray_options

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow


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
            if (
                conn.status == psutil.CONN_LISTEN
                and not ipaddress.ip_address(conn.laddr.ip).is_loopback
            ):
                found.append(f"{name} {proc.pid} {conn.laddr.ip}:{conn.laddr.port}")
    return found


def test_local_ray_options_keep_the_session_under_the_servers_home(tmp_path: Path) -> None:
    home = Path("/tmp") / f"aimass-t{tmp_path.name[-6:]}"  # short: Ray's socket paths
    options = local_ray_options(home / "ray")
    assert options["_node_ip_address"] == "127.0.0.1" and options["include_dashboard"] is False
    assert options["_temp_dir"] == str(home / "ray") and (home / "ray").stat().st_mode & 0o077 == 0
    long = local_ray_options(tmp_path / ("x" * 60) / "ray")  # too long for a socket path
    assert len(long["_temp_dir"]) < 40 and Path(long["_temp_dir"]).is_dir()


@pytest.mark.xfail(
    strict=True,
    reason="Ray 2.60 binds its GCS, raylet and worker gRPC servers to every interface "
    "whatever the node address (ray-project/ray#59852 binds them to the node address, "
    "in a later Ray); docs/security.md says to firewall those ports or use --ray-address",
)
def test_a_local_ray_started_by_aimass_listens_on_loopback_only(tmp_path: Path) -> None:
    if ray.is_initialized():
        ray.shutdown()
    executor = RayExecutor({}, temp_dir=Path("/tmp") / f"ar-{tmp_path.name[-8:]}")
    try:
        assert executor._owns_ray
        assert _listening_beyond_loopback() == []
    finally:
        executor.close()
