"""The bubblewrap command line that puts one Python process in its own little machine.

The sandbox gets new pid, network, ipc, uts (and, where possible, cgroup) namespaces; a
root file system that is an empty tmpfs, remounted read-only, holding read-only binds of
/usr (with the /bin, /lib... links), a few harmless /etc files and the interpreter's own
prefix; a fresh /proc and a minimal /dev; and a size-capped private tmpfs at /tmp (the
working directory) and /dev/shm. Nothing of the user's home is bound except the
interpreter's prefix when the interpreter happens to live there. The environment is
cleared down to PATH, HOME=/tmp, LANG and PYTHONDONTWRITEBYTECODE.

Why not `--unshare-all`: run as real root, bwrap maps the sandbox uid onto root (uid 0
outside) and keeps full capabilities inside, and the kernel never applies RLIMIT_NPROC
to uid 0, so a fork bomb would run free. As root we therefore let bwrap set up the
namespaces itself (no user namespace), keep only CAP_SETUID/CAP_SETGID for the boot code,
and the boot code switches to an unprivileged uid (65534, "nobody") after setting the
limits. Without root, bwrap runs unprivileged in a new user namespace, where RLIMIT_NPROC
counts that sandbox's processes only.

Note that bwrap, run as root, creates the parent directories of bind targets with mode
0700, which would lock the unprivileged uid out of, e.g., /root/.pyenv/...: every parent is
therefore created explicitly with mode 0755.
"""

from __future__ import annotations

import os
import sys
from pathlib import PurePosixPath

from rewards.execution.base import Limits

# Top-level links or directories that programs expect next to /usr (merged-/usr systems
# have them as symlinks into /usr).
_ROOT_ENTRIES = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# World-readable /etc files a Python program may want: dynamic linker cache, time zone,
# user and group names. Not bound: shadow files, ssl keys, hosts, resolv.conf (no network).
_ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf")
SANDBOX_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
}


def interpreter_command(python: str = sys.executable) -> list[str]:
    """How to start the sandboxed interpreter: isolated (-I), no site-packages (-S), UTF-8,
    no limit on int<->str conversions (3.11 refuses over 4300 digits; the graders' Pythons
    did not, and `print(2**20000)` is a fine answer).

    Site-packages are left out on purpose: they cost ~15 ms per start, and a program under
    test should need only the standard library.
    """
    return [os.path.realpath(python), "-I", "-S", "-B", "-X", "utf8", "-X", "int_max_str_digits=0"]


def interpreter_prefixes() -> list[str]:
    """Directories the interpreter needs (its standard library), outside /usr."""
    executable_prefix = str(PurePosixPath(os.path.realpath(sys.executable)).parent.parent)
    candidates = {sys.base_prefix, sys.base_exec_prefix, executable_prefix}
    prefixes = []
    for prefix in sorted(candidates):
        prefix = os.path.realpath(prefix)
        if not _inside(prefix, "/usr") and os.path.isdir(prefix) and prefix not in prefixes:
            prefixes.append(prefix)
    # A prefix nested in another is already bound with it.
    return [p for p in prefixes if not any(q != p and _inside(p, q) for q in prefixes)]


def bwrap_command(bwrap: str, limits: Limits, as_root: bool) -> list[str]:
    """The bwrap arguments up to (not including) the command to run inside."""
    args = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if as_root:
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-user"]
    args += ["--die-with-parent", "--new-session", "--ro-bind", "/usr", "/usr"]
    for entry in _ROOT_ENTRIES:
        if os.path.islink(entry):
            args += ["--symlink", os.readlink(entry), entry]
        elif os.path.isdir(entry):
            args += ["--ro-bind", entry, entry]
    prefixes = interpreter_prefixes()
    for directory in _parents([*prefixes, "/etc/x"]):
        args += ["--perms", "0755", "--dir", directory]
    for path in _ETC_FILES:
        args += ["--ro-bind-try", path, path]
    for prefix in prefixes:
        args += ["--ro-bind", prefix, prefix]
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--size", str(limits.tmp_mb << 20), "--perms", "01777", "--tmpfs", "/tmp"]
    args += ["--size", str(min(limits.tmp_mb, 16) << 20), "--perms", "01777", "--tmpfs", "/dev/shm"]
    # The root tmpfs and /dev's tmpfs have no size cap: nothing may write to them.
    args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/tmp", "--clearenv"]
    for name, value in SANDBOX_ENV.items():
        args += ["--setenv", name, value]
    return args + ["--"]


def _parents(paths: list[str]) -> list[str]:
    """Every proper ancestor directory of `paths` (except /), parents first, no repeats."""
    parents: list[str] = []
    for path in paths:
        for parent in reversed(PurePosixPath(path).parents):
            name = str(parent)
            if name != "/" and name not in parents:
                parents.append(name)
    return parents


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")
