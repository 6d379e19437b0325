"""Sandboxed processes: the argv that runs a command under bubblewrap (Debian's ``bwrap``).

Code the server does not trust (job attempts, code-bearing model files) runs in
a sandbox built here: a fresh mount namespace that sees the system's programs
and libraries and the Python installation read-only, and nothing of the
server's home, the OS user's home, the artifact folder or ``/tmp`` beyond
what the caller binds in; an environment cleared to what the caller passes; no
new privileges; killed with its parent. ``network=False`` also gives it an
empty network namespace. This module knows nothing of jobs or models.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aimass.errors import Unavailable

#: Read-only system folders every sandbox sees (those that exist on this machine).
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt")
#: Single files under /etc that programs need to start (the loader cache, time zone, TLS roots).
SYSTEM_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/localtime",
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
)
#: Environment variables passed through when present: locale and thread-pool sizes, nothing else.
SAFE_ENV = (
    "LANG",
    "LC_ALL",
    "TZ",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


def bwrap_path() -> str | None:
    """The bubblewrap binary, or None when it is not installed."""
    return shutil.which("bwrap")


def require_bwrap() -> str:
    """The bubblewrap binary, or Unavailable saying how to install it."""
    path = bwrap_path()
    if path is None:
        raise Unavailable(
            "this needs a sandbox and bubblewrap is not installed; "
            "install it with: apt-get install -y bubblewrap"
        )
    return path


def python_dirs() -> list[str]:
    """Folders the running Python needs to import what this process can import."""
    candidates = {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        sysconfig.get_paths()["stdlib"],
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["platlib"],
        str(Path(sys.executable).resolve().parent.parent),
    }
    # Editable installs and test paths put source folders on sys.path.
    candidates.update(p for p in sys.path if p and Path(p).is_dir())
    return sorted(p for p in candidates if Path(p).exists())


@dataclass
class Sandbox:
    """A bubblewrap sandbox description; ``argv(command)`` gives the command line that runs it.

    ``read_only`` and ``writable`` are host paths bound at the same path inside;
    ``hidden`` are folders replaced by an empty tmpfs (a Python folder inside one
    is bound again over it, but never a hidden folder itself); ``env`` is the
    whole environment of the command. ``devices`` are device nodes bound in
    (``/dev/nvidia0``). ``die_with_parent`` False suits a long-lived process
    that is started from a short-lived thread and ends itself when its stdin closes.
    """

    read_only: Sequence[str | Path] = ()
    writable: Sequence[str | Path] = ()
    hidden: Sequence[str | Path] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    network: bool = False
    workdir: str | Path = "/tmp"
    fresh_proc: bool = True
    devices: Sequence[str | Path] = ()
    die_with_parent: bool = True

    def argv(self, command: Sequence[str]) -> list[str]:
        """The full argv: ``bwrap [options] -- command...``."""
        args = [
            require_bwrap(),
            "--new-session",
            "--unshare-user-try",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--clearenv",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
        ]
        if self.fresh_proc:
            args += ["--unshare-pid", "--proc", "/proc"]
        else:
            args += ["--ro-bind", "/proc", "/proc"]
        if self.die_with_parent:
            args.append("--die-with-parent")
        if not self.network:
            args.append("--unshare-net")
        for device in self.devices:
            args += ["--dev-bind", str(device), str(device)]
        for directory in SYSTEM_DIRS:
            if os.path.isdir(directory) and not os.path.islink(directory):
                args += ["--ro-bind", directory, directory]
            elif os.path.islink(directory):
                args += ["--symlink", os.readlink(directory), directory]
        for file in SYSTEM_FILES:
            if os.path.exists(file):
                args += ["--ro-bind", file, file]
        pythons = [d for d in python_dirs() if d != "/"]
        for directory in pythons:
            args += ["--ro-bind", directory, directory]
        for hidden in self.hidden:
            args += ["--tmpfs", str(hidden)]
        # A Python folder inside a hidden one (a venv under the home) is bound again over
        # the tmpfs; a hidden folder itself never is (sys.path may hold the home itself).
        rebound = [
            d for d in pythons if _under_any(d, self.hidden) and not _equals_any(d, self.hidden)
        ]
        rebound += [str(p) for p in self.read_only]
        for directory in rebound:
            args += ["--ro-bind", directory, directory]
        # What was bound again may hold a hidden folder (a home inside a project): hide it again.
        for hidden in self.hidden:
            if any(_strictly_under(str(hidden), d) for d in rebound):
                args += ["--tmpfs", str(hidden)]
        for path in self.writable:
            args += ["--bind", str(path), str(path)]
        for key, value in self.env.items():
            args += ["--setenv", key, value]
        args += ["--chdir", str(self.workdir), "--"]
        return args + list(command)


def safe_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A clean environment: PATH, HOME=/tmp, the locale and thread variables, then ``extra``."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"}
    env.update({k: os.environ[k] for k in SAFE_ENV if k in os.environ})
    env.update(extra or {})
    return env


def host_pid(ns_pid: int, ancestor: int) -> int | None:
    """The pid, as this machine sees it, of the sandboxed process ``ns_pid``.

    Processes in a sandbox see their own pid namespace; ``ancestor`` (the
    ``bwrap`` process started here) tells apart several sandboxes on one machine.
    """
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        nspids = fields.get("NSpid", "").split()
        if len(nspids) < 2 or nspids[-1] != str(ns_pid):
            continue
        pid = int(entry.name)
        if _descends_from(pid, ancestor):
            return pid
    return None


def _descends_from(pid: int, ancestor: int) -> bool:
    seen = 0
    while pid > 1 and seen < 64:  # a parent chain is short; never loop forever on a race
        if pid == ancestor:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        seen += 1
    return pid == ancestor


def _under_any(path: str, roots: Sequence[str | Path]) -> bool:
    resolved = Path(path).resolve()
    return any(resolved.is_relative_to(Path(root).resolve()) for root in roots)


def _equals_any(path: str, roots: Sequence[str | Path]) -> bool:
    resolved = Path(path).resolve()
    return any(resolved == Path(root).resolve() for root in roots)


def _strictly_under(path: str, root: str) -> bool:
    resolved, base = Path(path).resolve(), Path(root).resolve()
    return resolved != base and resolved.is_relative_to(base)
