"""The first code that runs inside the sandbox: apply the limits, drop privileges, run the program.

`LocalExecutor` passes this file's source to `python -c`, with the number of an inherited
file descriptor holding a JSON spec: `{"program": str, "prelude": str, "limits": {...},
"uid": int|null, "harness": null | {"source", "setup", "definitions", "tests", "nonce",
"timeout_s"}}`;
`E2BExecutor` passes the path of a spec file instead, which is deleted once read. With a
`harness`, the program is not run as a script: the harness (`harness.py`, its source in
the spec) runs it and then the tests, which never touch a file the program can read.
The `prelude` (trusted code: the graders' preloaded imports) runs first, in the program's
namespace.
It uses the standard library only and must not import `rewards` (the project is not
visible inside the sandbox).

Limits are set here rather than by the parent because `preexec_fn` is unsafe in a
process with threads (the reward runs executions from a thread pool). They are set as
hard limits, which an unprivileged process cannot raise again. RLIMIT_NPROC is ignored for
root, so when the sandbox starts as root the spec names a `uid` to switch to first.

The interpreter runs without `site` (`-S`), which is what defines `exit` and `quit`;
they are defined here as `site` would, since scripts end with them.
"""

import _sitebuiltins
import builtins
import json
import os
import resource
import sys


def _limit(name, soft, hard=None):
    """Set a limit, never above a hard limit the host already imposes."""
    kind = getattr(resource, name, None)
    if kind is None:
        return
    hard = soft if hard is None else hard
    _, host_hard = resource.getrlimit(kind)
    if host_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, host_hard), min(hard, host_hard)
    resource.setrlimit(kind, (soft, hard))


def _read_spec(where):
    """The spec from an inherited fd (a number) or a file (a path), leaving no copy behind."""
    if where.isdigit():
        with os.fdopen(int(where), "rb") as spec_file:  # closing it leaves the program no copy to read
            return json.loads(spec_file.read())
    with open(where, "rb") as spec_file:
        spec = json.loads(spec_file.read())
    os.unlink(where)
    return spec


def _harness(source):
    """The harness's `run`, from its own namespace with its own copy of the builtins:
    nothing the program can patch."""
    namespace = {"__name__": "selfloop_harness", "__builtins__": dict(builtins.__dict__)}
    exec(compile(source, "harness.py", "exec"), namespace)
    return namespace["run"]


def main(where):
    spec = _read_spec(where)
    source, limits = spec["program"], spec["limits"]
    # Written before privileges drop, so the program can read its own file but not change it.
    with open("program.py", "w", encoding="utf-8") as program_file:
        program_file.write(source)
    mb = 1024 * 1024
    _limit("RLIMIT_CPU", limits["cpu_s"], limits["cpu_s"] + 1)
    _limit("RLIMIT_AS", limits["memory_mb"] * mb)
    _limit("RLIMIT_FSIZE", limits["max_file_mb"] * mb)
    _limit("RLIMIT_NPROC", limits["max_processes"])
    _limit("RLIMIT_CORE", 0)
    if spec.get("uid") is not None:
        os.setgroups([])
        os.setgid(spec["uid"])
        os.setuid(spec["uid"])  # from root to a plain uid: every capability is gone
    sys.argv = ["program.py"]
    sys.path.insert(0, os.getcwd())  # as `python program.py` would, so local modules import
    builtins.exit = _sitebuiltins.Quitter("exit", "Ctrl-D (i.e. EOF)")
    builtins.quit = _sitebuiltins.Quitter("quit", "Ctrl-D (i.e. EOF)")
    if spec.get("harness"):
        # The nonce and the tests go straight from the spec into `run`: no local of this
        # frame holds them (or the harness's functions) while the program runs.
        _harness(spec["harness"].pop("source"))(
            source, max_output_bytes=limits.get("max_output_bytes", 1 << 20), prelude=spec.get("prelude") or "",
            **spec.pop("harness"))  # never returns
    # Run in the real __main__ module (pickle and `import __main__` expect it), emptied of
    # this file's names so the program starts from a clean namespace.
    main_globals = sys.modules["__main__"].__dict__
    for name in [name for name in main_globals if not name.startswith("__")]:
        del main_globals[name]
    main_globals["__file__"] = "program.py"
    if spec.get("prelude"):
        exec(compile(spec["prelude"], "prelude.py", "exec"), main_globals)
    exec(compile(source, "program.py", "exec"), main_globals)


if __name__ == "__main__":  # true under `python -c`; false when a test collector imports this
    main(sys.argv[1])
