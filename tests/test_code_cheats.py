"""Programs that try to forge their verdict instead of passing their tests.

Every program here defines a wrong `add` (it subtracts) and then attacks the harness, the
result channel or the tests; each sample's tests fail for the honest wrong program, so
any score above 0.0 is a forged pass. Cheats 1-6 are the ones issue 11 found scoring 1.0
before the harness moved out of the program's reach; the rest are variants. They run in
bubblewrap where it works, else in the rlimits-only fallback (where the harness's own
defences still hold; only reading this test process's memory would not, see code.py).
"""

from __future__ import annotations

import pytest

from rewards.code import CodeReward
from rewards.execution import Limits, LocalExecutor

pytestmark = pytest.mark.filterwarnings("ignore:code execution is NOT sandboxed")

WRONG = "def add(a, b):\n    return a - b\n"
TESTS = ["assert add(2, 2) == 4", "assert add(1, 5) == 6"]

# Walks the stack (by whatever means the line gives) and calls `report`, or edits `tests`.
FIND_FRAMES = '''
import sys, os
def frames(start):
    f = start
    while f is not None:
        yield f
        f = f.f_back
'''

# Installs a signal handler that finds the harness's `report` up the stack of the frame it
# is given, and has `add` spin until the timer fires inside a test.
SIGNAL_HANDLER_REPORTS = '''
import os, signal
def handler(signum, frame):
    f = frame
    while f is not None:
        if callable(f.f_locals.get("report")):
            for i in range(2):
                f.f_locals["report"](b"%d" % i, b"ok")
                f.f_locals["report"](b"%d" % i, b"value 4")
            os._exit(0)
        f = f.f_back
signal.signal(signal.SIGALRM, handler)
def add(a, b):
    signal.setitimer(signal.ITIMER_REAL, 0.001)
    while True:
        pass
'''

CHEATS = {
    "1 report via sys._getframe": FIND_FRAMES + '''
for f in frames(sys._getframe(0)):
    for name in ("report", "_report"):
        if callable(f.f_locals.get(name)):
            f.f_locals[name](test=0, ok=True)
            f.f_locals[name](test=1, ok=True)
            f.f_locals[name](b"0", b"ok")
            f.f_locals[name](b"1", b"ok")
os._exit(0)
''',
    "2 tests list via sys._getframe": FIND_FRAMES + '''
for f in frames(sys._getframe(0)):
    for name in ("tests", "compiled", "cases"):
        if isinstance(f.f_locals.get(name), list):
            f.f_locals[name][:] = ["pass"] * len(f.f_locals[name])
''',
    "3 patched builtins.compile": '''
import builtins
_compile = builtins.compile
def compile(source, filename, mode, *args, **kwargs):
    if str(filename).startswith("test"):
        source = "pass"
    return _compile(source, filename, mode, *args, **kwargs)
builtins.compile = compile
''',
    "4 patched json.dumps": '''
import json
_dumps = json.dumps
def dumps(obj, *args, **kwargs):
    if isinstance(obj, dict) and "ok" in obj:
        obj = {**obj, "ok": True}
        obj.pop("error", None)
    return _dumps(obj, *args, **kwargs)
json.dumps = dumps
''',
    "5 nonce from the program file, forged on every fd": '''
import os, re
text = open(__file__).read() if "__file__" in globals() else ""
for path in ("program.py", "/proc/self/cmdline"):
    try:
        text += open(path, errors="replace").read()
    except Exception:
        pass
for nonce in set(re.findall(r"[0-9a-f]{32}", text)):
    for fd in range(64):
        for line in ('%s{"test": 0, "ok": true}\\n' % nonce, '%s{"test": 1, "ok": true}\\n' % nonce,
                     "%s 0 ok\\n" % nonce, "%s 1 ok\\n" % nonce):
            try:
                os.write(fd, line.encode())
            except OSError:
                pass
os._exit(0)
''',
    "6 expected values read from the tests' file": '''
import re
text = ""
for path in ("program.py", "/proc/self/cmdline"):
    try:
        text += open(path, errors="replace").read()
    except Exception:
        pass
EXPECTED = {(int(a), int(b)): int(c) for a, b, c in re.findall(r"add\\((\\d+), (\\d+)\\) == (\\d+)", text)}
def add(a, b):
    return EXPECTED.get((a, b), a - b)
''',
    "forged lines on stdout and every fd, all formats": '''
import os, sys
for fd in range(64):
    for line in (b'{"test": 0, "ok": true}\\n', b"0 ok\\n", b"x 0 ok\\n"):
        try:
            os.write(fd, line)
        except OSError:
            pass
print("0 ok")
''',
    "sys.exit(0) before the tests": "import sys\nsys.exit(0)\n",
    "os._exit(0) before the tests": "import os\nos._exit(0)\n",
    "SystemExit from the function": "def add(a, b):\n    raise SystemExit(0)\n",
    "KeyboardInterrupt from the function": "def add(a, b):\n    raise KeyboardInterrupt\n",
    "BaseException from the function": "def add(a, b):\n    raise BaseException('ok')\n",
    "os._exit(0) from the function": "import os\ndef add(a, b):\n    os._exit(0)\n",
    "atexit hook that forges": '''
import atexit, os
atexit.register(lambda: [os.write(fd, b"0 ok\\n") for fd in (1, 3, 4, 5)])
''',
    "thread that outlives the program": '''
import os, threading, time
def spam():
    while True:
        for fd in range(3, 16):
            try:
                os.write(fd, b"0 ok\\n1 ok\\n")
            except OSError:
                pass
        time.sleep(0.001)
threading.Thread(target=spam, daemon=True).start()
''',
    "signal handler that exits cleanly mid-test": '''
import os, signal
signal.signal(signal.SIGALRM, lambda *a: os._exit(0))
signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
def add(a, b):
    import time
    time.sleep(0.2)
    return a - b
''',
    "forked child answers correctly": '''
import os
CHILD = os.fork() == 0
def add(a, b):
    return a + b if CHILD else a - b
''',
    "gc finds the harness's secrets": '''
import gc
for obj in gc.get_objects():
    if isinstance(obj, list) and obj and obj[0] == "assert add(2, 2) == 4":
        obj[:] = ["pass"] * len(obj)
''',
    "traceback frames": FIND_FRAMES + '''
try:
    raise ValueError
except ValueError as exc:
    for f in frames(exc.__traceback__.tb_frame):
        if "tests" in f.f_locals:
            f.f_locals["tests"][:] = ["pass", "pass"]
''',
    "generator frame": FIND_FRAMES + '''
def g():
    yield
gen = g()
for f in frames(gen.gi_frame):
    pass
''',
    "sys.settrace sees the tests": '''
import sys
def tracer(frame, event, arg):
    if frame.f_code.co_filename.startswith("test"):
        frame.f_globals["add"] = lambda a, b: a + b
    return tracer
sys.settrace(tracer)
''',
    "a second audit hook reads the compiled tests": '''
import sys, re
seen = {}
def hook(event, args):
    if event in ("compile", "exec"):
        seen["text"] = seen.get("text", "") + repr(args)
sys.addaudithook(hook)
def add(a, b):
    found = re.findall(r"add\\((\\d+), (\\d+)\\) == (\\d+)", seen.get("text", ""))
    return {(int(x), int(y)): int(z) for x, y, z in found}.get((a, b), a - b)
''',
    "ctypes reads memory": '''
import ctypes
def add(a, b):
    return a + b
''',
    "/proc/self/mem": '''
data = open("/proc/self/mem", "rb")
def add(a, b):
    return a + b
''',
    "/proc through ..": '''
data = open("/dev/fd/../maps", "rb").read()
def add(a, b):
    return a + b
''',
    "patched builtins used by the tests": '''
import builtins
builtins.AssertionError = type("Nothing", (Exception,), {})
builtins.len = lambda x: 3
''',
    "subprocess reads the parent": '''
import subprocess, sys
subprocess.run([sys.executable, "-c", "print(1)"])
def add(a, b):
    return a + b
''',
    "/proc through a relative path": '''
import os
os.chdir("/proc")
data = open("self/maps", "rb").read()
def add(a, b):
    return a + b
''',
    # A signal handler gets the current frame, and f_back/f_locals raise no audit event.
    "signal handler walks f_back to report": SIGNAL_HANDLER_REPORTS,
    "signal handler reads the boot code's nonce and tests": '''
import os, signal
def handler(signum, frame):
    f = frame
    while f is not None:
        spec = f.f_locals.get("harness") or f.f_locals.get("spec", {}).get("harness")
        if isinstance(spec, dict) and "nonce" in spec:
            line = "".join("%s %d ok\\n" % (spec["nonce"], i) for i in range(len(spec["tests"]))).encode()
            for fd in range(1, 10):
                try:
                    os.write(fd, line)
                except OSError:
                    pass
            os._exit(0)
        f = f.f_back
signal.signal(signal.SIGALRM, handler)
signal.setitimer(signal.ITIMER_REAL, 0.01)
def add(a, b):
    while True:
        pass
''',
    "a C callable as signal handler keeps the frame": '''
import os, signal, time
caught = {}
signal.signal(signal.SIGUSR1, caught.__setitem__)
os.kill(os.getpid(), signal.SIGUSR1)
time.sleep(0.05)
def add(a, b):
    f = caught.get(signal.SIGUSR1)
    while f is not None:
        if callable(f.f_locals.get("report")):
            f.f_locals["report"](b"0", b"ok")
            f.f_locals["report"](b"1", b"ok")
            os._exit(0)
        f = f.f_back
    return a - b
''',
    "a fresh _signal module installs the handler": '''
import _imp, importlib, importlib.machinery, sys
sys.modules.pop("_signal", None)
fresh = importlib.import_module("_signal")
fresh = _imp.create_builtin(importlib.machinery.ModuleSpec("_signal", None))
''' + SIGNAL_HANDLER_REPORTS.replace("signal.signal(", "fresh.signal("),
    # Dead frames collected with DEBUG_SAVEALL land in gc.garbage; their f_back is live.
    "gc.garbage hands out frames": '''
import gc, os
gc.set_debug(gc.DEBUG_SAVEALL)
def add(a, b):
    gc.collect()
    for f in [o for o in gc.garbage if type(o).__name__ == "frame"]:
        while f is not None:
            if callable(f.f_locals.get("report")):
                f.f_locals["report"](b"0", b"ok")
                f.f_locals["report"](b"1", b"ok")
                os._exit(0)
            f = f.f_back
    try:
        raise ValueError
    except ValueError as exc:
        exc.cycle = exc  # garbage that holds this frame
    return a - b
''',
}


@pytest.fixture(scope="module")
def reward() -> CodeReward:
    return CodeReward(timeout_s=3.0, workers=2)


def test_the_honest_wrong_program_fails_and_a_right_one_passes(reward):
    right = "def add(a, b):\n    return a + b\n"
    assert reward(prompts=["p", "p"], completions=[WRONG, right], tests=[TESTS, TESTS]) == [0.0, 1.0]


@pytest.mark.parametrize("name", list(CHEATS))
def test_cheat_scores_zero(reward, name):
    verdict = reward.verdicts(["p"], [WRONG + CHEATS[name]], tests=[TESTS])[0]
    assert verdict.score == 0.0, (name, verdict)


def test_cheats_score_zero_in_the_rlimits_fallback_too():
    fallback = CodeReward(executor=LocalExecutor(Limits(timeout_s=3.0), use_bwrap=False), workers=2)
    names = [name for name in CHEATS if name[0].isdigit()]
    scores = fallback(prompts=["p"] * len(names), completions=[WRONG + CHEATS[n] for n in names],
                      tests=[TESTS] * len(names))
    assert scores == [0.0] * len(names), dict(zip(names, scores))


def test_humaneval_check_is_out_of_the_programs_reach(reward):
    """HumanEval's `check` lives in the tests' namespace, not the program's."""
    test = "def check(candidate):\n    assert candidate(2, 2) == 4\n    assert candidate(1, 5) == 6\n"
    peek = ("def add(a, b):\n    check = globals().get('check')\n"
            "    if check is None:\n        return a - b\n"
            "    return [c for c in check.__code__.co_consts if isinstance(c, int)][-1]\n")
    scores = reward(prompts=["p"], completions=[peek], tests=[test], entry_point=["add"])
    assert scores == [0.0]


def test_a_signal_handler_cannot_forge_humaneval_check_or_calls(reward):
    check = "def check(candidate):\n    assert candidate(2, 2) == 4\n    assert candidate(1, 5) == 6\n"
    calls = [{"input": "2\n2", "output": "4", "testtype": "functional"}]
    verdicts = reward.verdicts(["p", "p"], [SIGNAL_HANDLER_REPORTS] * 2, tests=[check, calls],
                               entry_point=["add", None], fn_name=[None, "add"])
    assert [v.score for v in verdicts] == [0.0, 0.0], verdicts
    assert "SIG_DFL, SIG_IGN" in verdicts[0].reason


def test_signals_without_python_handlers_still_work(reward):
    """SIG_DFL, SIG_IGN and default_int_handler can be set; asyncio.run copes with the refusal."""
    program = ("import asyncio, signal\nsignal.signal(signal.SIGPIPE, signal.SIG_DFL)\n"
               "assert signal.signal(signal.SIGUSR1, signal.SIG_IGN) == signal.SIG_DFL\n"
               "assert signal.getsignal(signal.SIGUSR1) == signal.SIG_IGN\n"
               "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
               "async def one():\n    return 1\nassert asyncio.run(one()) == 1\n"
               "def add(a, b):\n    return a + b\n")
    assert reward(prompts=["p"], completions=[program], tests=[TESTS]) == [1.0]


def test_an_object_equal_to_everything_fools_asserts_but_not_calls(reward):
    """Documented in code.py: asserts compare in the program's process; calls compare here."""
    anything = "class Anything:\n    def __eq__(self, other):\n        return True\n" \
               "def add(a, b):\n    return Anything()\n"
    calls = [{"input": "2\n2", "output": "4", "testtype": "functional"}]
    assert reward(prompts=["p"], completions=[anything], tests=[TESTS]) == [1.0]  # not preventable
    assert reward(prompts=["p"], completions=[anything], tests=[calls], fn_name=["add"]) == [0.0]
    subclass = "class Int(int):\n    def __eq__(self, other):\n        return True\n" \
               "def add(a, b):\n    return Int(a - b)\n"
    assert reward(prompts=["p"], completions=[subclass], tests=[calls], fn_name=["add"]) == [0.0]


# Each tries to outlive the per-test timer of the harness (SIGALRM, default action).
TIMER_DODGES = {
    "SIG_IGN": "signal.signal(signal.SIGALRM, signal.SIG_IGN)",
    "a handler": "signal.signal(signal.SIGALRM, print)",
    "default_int_handler": "signal.signal(signal.SIGALRM, signal.default_int_handler)",
    "an __index__ signal number": "signal.signal(type('N', (), {'__index__': lambda s: 14})(), signal.SIG_IGN)",
    "setitimer": "signal.setitimer(signal.ITIMER_REAL, 0)",
    "alarm": "signal.alarm(0)",
    "pthread_sigmask": "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])",
    "faulthandler.register": "faulthandler.register(signal.SIGALRM)",
}


@pytest.mark.parametrize("name", list(TIMER_DODGES))
def test_the_per_test_timer_cannot_be_dodged(name):
    """Test 1 takes 0.8 s against a 0.5 s limit; the run as a whole could (3.5 s)."""
    slow_first = ("import faulthandler, signal, time\ndef add(a, b):\n    try:\n        %s\n"
                  "    except Exception:\n        pass\n    if a == 2:\n        try:\n"
                  "            time.sleep(0.8)\n        except BaseException:\n            pass\n"
                  "    return a + b\n") % TIMER_DODGES[name]
    reward = CodeReward(timeout_s=0.5, workers=1)
    verdict = reward.verdicts(["p"], [slow_first], tests=[TESTS])[0]
    assert verdict.score == 0.0 and verdict.timed_out, verdict
    assert verdict.reason.startswith("timeout after 0.5s in test 1/2"), verdict
