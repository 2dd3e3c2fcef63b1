"""The test harness that runs inside the sandbox: the program, then its tests, in a jail.

`_boot.py` executes this file's source in a private namespace and calls `run(...)` in the
sandboxed process, before any of the program's code exists. Standard library only; it
must not import `rewards` (the project is not visible inside the sandbox).

Why it is built this way: the program and its tests share one interpreter, so whatever
decides pass/fail must be out of the program's reach.
- The tests and the nonce arrive in the boot spec (a file descriptor or a file, closed
  or deleted before anything runs); `program.py` holds the program only.
- Everything the harness calls after the program starts is captured before it starts
  (`compile`, `exec`, `os.write`, ...) and held in local variables and closures, never
  in a namespace the program can reach. The harness defines no classes, installs no
  signal handlers and starts no threads, so `object.__subclasses__()`,
  `signal.getsignal` and `threading.enumerate` lead nowhere.
- An audit hook, installed before the program runs and impossible to remove, refuses
  what reaches another frame or object graph: `sys._getframe`, traceback and generator
  frames (`tb_frame`, `gi_frame`, ...), `sys.settrace`/`setprofile`, `gc.get_objects`/
  `get_referrers`/`get_referents`, `ctypes`, a second audit hook (which would see the
  tests compiled and executed), starting new programs (`subprocess`, `os.exec*`,
  `os.system`, `posix_spawn`) and opening paths under `/proc`. The process is made
  non-dumpable, so neither it nor its children can read its memory through `/proc`.
- Tests run in their own namespace (a copy of the program's after it and the shared
  setup ran, with a fresh copy of the original builtins): the program's functions cannot
  see `check` or other test definitions.
- Each result line is `nonce index verdict [detail]`, written with the captured
  `os.write` to a duplicate of the original stdout; the program's own fd 1 is redirected
  to stderr. Only the harness's own process reports (a forked copy stays silent).

A test passes when its code ran to the end without raising. A function-call test
(`{"call": name, "args": [...]}`) reports the return value, serialized strictly from
built-in types (their own methods, never the object's), and the host compares it.
"""

import builtins
import os
import sys

_BLOCKED_EVENTS = frozenset({
    "sys._getframe", "sys._current_frames", "sys._current_exceptions", "sys.settrace", "sys.setprofile",
    "sys._setprofileallthreads", "sys._settraceallthreads", "sys.addaudithook", "sys.monitoring.register_callback",
    "gc.get_objects", "gc.get_referrers", "gc.get_referents", "os.system", "os.fork_exec", "os.forkpty",
    "pty.spawn", "os.startfile", "os.symlink", "os.link",
})
_BLOCKED_PREFIXES = ("ctypes.", "os.exec", "os.posix_spawn", "os.spawn", "subprocess.", "_posixsubprocess.")
# Audited attribute reads that lead to a frame (its locals are the harness's secrets).
_FRAME_ATTRIBUTES = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back", "f_locals", "f_globals"})
_MAX_VALUE_CHARS = 100_000
_MAX_DEPTH = 50


def run(program, setup, definitions, tests, nonce):
    """Run `program`, then `setup` in its namespace (MBPP's test imports and setup code,
    shared as the field shares them), then `definitions` and each test in the tests'
    namespace; report; never return."""
    shared = len(setup)
    setup = list(setup) + list(definitions)
    capture = _capture(nonce)
    report, compile_code, run_code = capture["report"], capture["compile"], capture["exec"]
    encode, describe = capture["encode"], capture["describe"]
    pristine_builtins = dict(builtins.__dict__)
    try:
        compiled = [_compile_test(compile_code, test, index) for index, test in enumerate(tests)]
        setup_code = [compile_code(code, "setup_%d" % (i + 1), "exec", dont_inherit=True, optimize=0)
                      for i, code in enumerate(setup)]
        program_code = compile_code(program, "program.py", "exec", dont_inherit=True, optimize=0)
    except BaseException as exc:
        report(b"program", b"error", describe(exc))
        capture["exit"](0)
    program_namespace = sys.modules["__main__"].__dict__
    for name in [name for name in program_namespace if not name.startswith("__")]:
        del program_namespace[name]
    program_namespace.update({"__name__": "__main__", "__file__": "program.py",
                              "__builtins__": dict(pristine_builtins)})
    _make_undumpable()
    _install_jail()
    del nonce, tests, setup, definitions, program
    try:
        run_code(program_code, program_namespace)
    except BaseException as exc:
        report(b"program", b"error", describe(exc))
        capture["exit"](0)
    test_namespace = None
    for index, code in enumerate(setup_code):
        if index == shared:  # the tests' own definitions (HumanEval's check) stay out of the program's reach
            test_namespace = dict(program_namespace)
            test_namespace["__builtins__"] = dict(pristine_builtins)
        try:
            run_code(code, program_namespace if test_namespace is None else test_namespace)
        except BaseException as exc:
            report(b"setup", b"error", describe(exc))
            capture["exit"](0)
    if test_namespace is None:
        test_namespace = dict(program_namespace)
    for index, (kind, code, args) in enumerate(compiled):
        label = b"%d" % index
        test_namespace["__builtins__"] = dict(pristine_builtins)
        try:
            if kind == "code":
                run_code(code, test_namespace)
                outcome = (b"ok", b"")
            else:
                value = _call(test_namespace, code, args)
                outcome = (b"value", encode(value))
        except BaseException as exc:
            outcome = (b"fail", describe(exc))
        report(label, *outcome)
    capture["exit"](0)


def _capture(nonce):
    """The functions the harness needs after the program starts, bound now, as closures."""
    write, getpid, dup, dup2, exit_now = os.write, os.getpid, os.dup, os.dup2, os._exit
    compile_code, run_code = builtins.compile, builtins.exec
    str_replace, str_encode, float_repr, int_repr = str.replace, str.encode, float.__repr__, int.__repr__
    type_of, base_exception = type, BaseException
    repr_of = {None: "None", True: "True", False: "False"}
    # Subclasses are shown as their built-in base, through the base's own methods, so an
    # overridden __eq__, __repr__ or __iter__ changes nothing.
    scalars = ((int, int_repr), (float, float_repr), (complex, complex.__repr__), (str, str.__repr__),
               (bytes, bytes.__repr__), (bytearray, lambda item: bytes.__repr__(bytes(item))))
    containers = ((list, list.__iter__, "[", "]", "[]"), (tuple, tuple.__iter__, "(", ")", "()"),
                  (set, set.__iter__, "{", "}", "set()"), (frozenset, frozenset.__iter__, "{", "}", "set()"),
                  (dict, dict.items, "{", "}", "{}"))
    type_name = type.__dict__["__name__"].__get__
    flush = [sys.stdout.flush, sys.stderr.flush]
    nonce_bytes, harness_pid = str_encode(nonce, "ascii"), getpid()
    results_fd = dup(1)
    dup2(2, 1)  # the program's prints go to stderr: they can neither crowd out nor forge results

    def report(label, verdict, detail=b""):
        if getpid() != harness_pid:
            return  # a process the program forked runs this code too; only the harness reports
        line = nonce_bytes + b" " + label + b" " + verdict + (b" " + detail if detail else b"") + b"\n"
        while line:
            try:
                line = line[write(results_fd, line):]
            except BaseException:
                return

    def describe(exc):
        try:
            name = type_name(type_of(exc))
            message = exc.__str__() if isinstance(exc, base_exception) else ""
            text = name + (": " + str.__str__(message) if isinstance(message, str) and message else "")
            return str_encode(str_replace(str_replace(text[:300], "\n", " "), "\r", " "), "utf-8", "replace")
        except BaseException:
            return b"unprintable exception"

    def encode(value):
        """A Python literal of `value`, built with built-in methods only, or b'!unencodable'."""
        parts = []

        def walk(item, depth):
            kind = type_of(item)
            if depth > _MAX_DEPTH:
                raise ValueError("too deep")
            if item is None or item is True or item is False:
                parts.append(repr_of[item])
                return
            for base, show in scalars:
                if issubclass(kind, base):
                    text = show(item)
                    parts.append({"inf": "1e999", "-inf": "-1e999"}.get(text, text))  # literal_eval reads these
                    return
            for base, members, opening, closing, empty in containers:
                if issubclass(kind, base):
                    items = list(members(item))
                    if not items:
                        parts.append(empty)
                        return
                    parts.append(opening)
                    for member in items:
                        if base is dict:
                            walk(member[0], depth + 1)
                            parts.append(":")
                            member = member[1]
                        walk(member, depth + 1)
                        parts.append(",")
                    parts.append(closing)
                    return
            raise ValueError("not a built-in value")

        try:
            walk(value, 0)
        except BaseException:
            return b"!unencodable"
        text = "".join(parts)
        if len(text) > _MAX_VALUE_CHARS:
            return b"!too long"
        return str_encode(text, "utf-8", "backslashreplace")

    def exit_harness(code):
        for stream_flush in flush:
            try:
                stream_flush()
            except BaseException:
                pass
        exit_now(code)  # skip the program's atexit handlers and threads: the verdict is in

    return {"report": report, "describe": describe, "encode": encode, "exit": exit_harness,
            "compile": compile_code, "exec": run_code}


def _compile_test(compile_code, test, index):
    """("code", code object, None) for code tests, ("call", name, args) for call tests."""
    if isinstance(test, dict):
        return "call", str(test["call"]), list(test["args"])
    return "code", compile_code(test, "test_%d" % (index + 1), "exec", dont_inherit=True, optimize=0), None


def _call(namespace, name, args):
    """Call the function `name` of the program (or LeetCode-style `Solution().name`)."""
    function = namespace.get(name)
    if function is None and isinstance(namespace.get("Solution"), type):
        function = getattr(namespace["Solution"](), name)
    if not callable(function):
        raise NameError("the program defines no function %r" % name)
    return function(*args)


def _make_undumpable():
    """PR_SET_DUMPABLE 0: /proc/<pid>/mem, fd, environ... become root's, and ptrace fails."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)
    except BaseException:
        pass  # not Linux, or no ctypes: the audit hook still refuses /proc
    for name in ("ctypes", "ctypes._endian"):
        sys.modules.pop(name, None)


def _install_jail():
    """An audit hook refusing introspection and escapes (see the module docstring)."""
    blocked, prefixes, frame_attributes = _BLOCKED_EVENTS, _BLOCKED_PREFIXES, _FRAME_ATTRIBUTES
    is_str = isinstance

    # The exception types are those the standard library already expects and handles:
    # namedtuple, enum and typing fall back when sys._getframe raises ValueError.
    def jail(event, args):
        if event == "sys._getframe":
            raise ValueError("sandbox: sys._getframe is not allowed here")
        if event in blocked or event.startswith(prefixes):
            raise RuntimeError("sandbox: %s is not allowed here" % event)
        if event == "object.__getattr__" and args[1] in frame_attributes:
            raise AttributeError("sandbox: reading %s is not allowed here" % args[1])
        if event == "open" and is_str(args[0], (str, bytes)):
            path = args[0].decode("utf-8", "replace") if is_str(args[0], bytes) else args[0]
            parts = path.split("/")  # symlinks cannot be made; /dev/fd/.. and friends hold ".."
            if "proc" in parts or ".." in parts:
                raise PermissionError("sandbox: opening %r is not allowed here" % path)

    sys.addaudithook(jail)
