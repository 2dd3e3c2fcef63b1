"""Hostile programs against the `code` reward's local sandbox.

Each program tries one escape or exhaustion. Every one must score 0.0 with a reason,
leave this test process and the machine healthy, and the next, ordinary sample must
score 1.0 again. A hostile program is written so that it only reaches `def solved()`
(which the sample's one test calls) if its attack succeeded: a 0.0 means "contained".

Tests marked bwrap-only need the bubblewrap sandbox; the ones that rlimits alone contain
also run against the rlimits-only fallback (`LocalExecutor(use_bwrap=False)`).
"""

from __future__ import annotations

import os
import resource
import shutil
import socket
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest

from rewards.code import CodeReward
from rewards.execution import Limits, LocalExecutor

pytestmark = pytest.mark.filterwarnings("ignore:code execution is NOT sandboxed")

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
LIMITS = Limits(timeout_s=1.0, memory_mb=256, max_processes=16, max_file_mb=8, tmp_mb=32)
# Attacks that must end at a resource limit (memory, file size, tmpfs) get a clock they
# cannot reach first: on a loaded CI machine, filling 256 MB once took over a second.
PATIENT_TIMEOUT_S = 20.0
NORMAL = "def solved():\n    return True\n"
ISOLATIONS = [pytest.param("bwrap", marks=needs_bwrap), "rlimits"]


@pytest.fixture(scope="module")
def rewards() -> dict[str, CodeReward]:
    """One reward per isolation (and a patient twin of each), built once: the bwrap ones
    refuse to fall back."""
    built = {}
    for isolation in ("bwrap", "rlimits"):
        for patient, limits in ((False, LIMITS), (True, replace(LIMITS, timeout_s=PATIENT_TIMEOUT_S))):
            executor = LocalExecutor(limits, use_bwrap=isolation == "bwrap")
            built[isolation, patient] = CodeReward(executor=executor, workers=1)
    return built


def reward_for(rewards: dict, isolation: str, patient: bool = False) -> CodeReward:
    reward = rewards[isolation, patient]
    if isolation == "bwrap":
        probe = reward.executor.run("print('ok')")
        if not probe.ok:
            pytest.skip(f"bwrap cannot create its namespaces here: {probe.error or probe.stderr[-200:]}")
    return reward


def assert_contained(reward: CodeReward, attack: str, *reason_parts: str, max_s: float = 5.0):
    """`attack` scores 0.0 with a reason mentioning one of `reason_parts`, fast, and the
    next ordinary program scores 1.0 again."""
    start = time.monotonic()
    verdict = reward.verdicts(["p"], [attack + "\n" + NORMAL], tests=[["assert solved()"]])[0]
    elapsed = time.monotonic() - start
    assert verdict.score == 0.0, verdict
    assert verdict.reason
    assert any(part in verdict.reason for part in reason_parts), verdict.reason
    assert elapsed < max_s, f"took {elapsed:.1f}s"
    # The sandbox is healthy again; a generous clock, so a busy machine cannot fail this.
    healthy = reward.verdicts(["p"], [NORMAL], tests=[["assert solved()"]], time_limit=[PATIENT_TIMEOUT_S])[0]
    assert healthy.score == 1.0, healthy
    return verdict


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_infinite_loop_is_killed_at_the_timeout(rewards, isolation):
    verdict = assert_contained(reward_for(rewards, isolation), "while True:\n    pass", "timeout after 1s")
    assert verdict.timed_out


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_sleeping_past_the_timeout_is_killed(rewards, isolation):
    assert_contained(reward_for(rewards, isolation), "import time\ntime.sleep(60)", "timeout after 1s", max_s=3)


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_ignoring_sigterm_does_not_survive_the_kill(rewards, isolation):
    attack = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass"
    assert_contained(reward_for(rewards, isolation), attack, "timeout after 1s", max_s=3)


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_memory_bomb_hits_the_address_space_limit(rewards, isolation):
    attack = "hoard = []\nwhile True:\n    hoard.append(bytearray(10 * 1024 * 1024))"
    reward = reward_for(rewards, isolation, patient=True)
    assert_contained(reward, attack, "MemoryError", max_s=PATIENT_TIMEOUT_S)
    assert_contained(reward, "block = bytearray(8 * 1024 ** 3)", "MemoryError", max_s=PATIENT_TIMEOUT_S)


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_filling_the_disk_stops_at_the_file_size_limit(rewards, isolation):
    free_before = shutil.disk_usage("/").free
    attack = "with open('huge.bin', 'wb') as f:\n    while True:\n        f.write(b'x' * (1 << 20))"
    assert_contained(reward_for(rewards, isolation, patient=True), attack, "File too large", max_s=PATIENT_TIMEOUT_S)
    assert free_before - shutil.disk_usage("/").free < 200 << 20


@needs_bwrap
def test_filling_the_disk_with_many_files_stops_at_the_tmpfs_size(rewards):
    free_before = shutil.disk_usage("/").free
    attack = (
        "i = 0\nwhile True:\n"
        "    with open(f'part{i}.bin', 'wb') as f:\n        f.write(b'x' * (7 << 20))\n    i += 1"
    )
    reward = reward_for(rewards, "bwrap", patient=True)
    assert_contained(reward, attack, "No space left on device", max_s=PATIENT_TIMEOUT_S)
    shm_attack = attack.replace("f'part{i}.bin'", "f'/dev/shm/part{i}.bin'")
    assert_contained(reward, shm_attack, "No space left on device", max_s=PATIENT_TIMEOUT_S)
    assert free_before - shutil.disk_usage("/").free < 200 << 20


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_printing_gigabytes_is_capped_and_does_not_block(rewards, isolation):
    reward = reward_for(rewards, isolation)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    attack = "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)"
    assert_contained(reward, attack, "timeout after 1s", max_s=3)
    # The executor itself keeps only the capped prefix of what it read.
    result = reward.executor.run(attack)
    assert result.timed_out and result.truncated
    assert len(result.stdout) == LIMITS.max_output_bytes
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 100 * 1024  # KiB


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_recursive_import_crash_is_contained(rewards, isolation):
    attack = (
        "import sys\nsys.setrecursionlimit(10 ** 6)\n"
        "with open('again.py', 'w') as f:\n"
        "    f.write(\"import sys\\ndel sys.modules['again']\\nimport again\\n\")\n"
        "import again"
    )
    # Under the test harness's audit hook every import costs more: the wall-clock kill may come first.
    assert_contained(reward_for(rewards, isolation), attack, "SIGSEGV", "RecursionError", "MemoryError", "timeout")


@needs_bwrap
def test_fork_bomb_is_held_to_the_process_limit(rewards):
    nobody_before = _processes_of_uid(65534)
    attack = "import os\nwhile True:\n    os.fork()"
    assert_contained(reward_for(rewards, "bwrap"), attack, "BlockingIOError", "Resource temporarily", "timeout")
    time.sleep(0.2)
    assert _processes_of_uid(65534) <= nobody_before  # the whole tree died with the sandbox


@needs_bwrap
def test_network_is_unreachable_even_on_loopback(rewards):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        attack = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=0.5)"
        assert_contained(reward_for(rewards, "bwrap"), attack, "ConnectionRefusedError")
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing ever connected
    finally:
        listener.close()
    attack = "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=0.5)"
    assert_contained(reward_for(rewards, "bwrap"), attack, "Network is unreachable", "OSError")


@needs_bwrap
def test_files_under_the_users_home_are_invisible(rewards):
    secret_dir = tempfile.mkdtemp(prefix="selfloop-secret-", dir=Path.home())
    secret = Path(secret_dir) / "secret.txt"
    secret.write_text("s3cret")
    try:
        attack = f"print(open({str(secret)!r}).read())"
        assert_contained(reward_for(rewards, "bwrap"), attack, "FileNotFoundError", "PermissionError")
        # Listing the home directory does not show the secret's directory either (at most
        # the path to the interpreter's prefix, when it lives under home).
        attack = f"import os\nassert {secret.parent.name!r} in os.listdir({str(Path.home())!r})"
        assert_contained(reward_for(rewards, "bwrap"), attack, "AssertionError", "FileNotFoundError", "PermissionError")
    finally:
        shutil.rmtree(secret_dir)


@needs_bwrap
@pytest.mark.parametrize("where", ["/usr/selfloop-escape.txt", "TMP", "REPO"])
def test_writing_outside_the_sandbox_fails(rewards, tmp_path, where):
    target = {"TMP": tmp_path / "escape.txt", "REPO": Path(__file__).with_name("escape.txt")}.get(where, Path(where))
    attack = f"open({str(target)!r}, 'w').write('escaped')"
    reasons = ("FileNotFoundError", "Read-only file system", "PermissionError")
    assert_contained(reward_for(rewards, "bwrap"), attack, *reasons)
    assert not target.exists()


@needs_bwrap
@pytest.mark.parametrize("victim", ["os.getppid()", "-1"])
def test_killing_the_parent_or_everyone_fails(rewards, victim):
    attack = f"import os, signal\nos.kill({victim}, signal.SIGKILL)"
    assert_contained(reward_for(rewards, "bwrap"), attack, "PermissionError", "ProcessLookupError")
    assert os.getpid() > 0  # still here to say so


def _processes_of_uid(uid: int) -> int:
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == uid
            except FileNotFoundError:
                pass
    return count


@pytest.mark.skipif(os.geteuid() != 0, reason="only root switches to an unprivileged uid")
def test_fallback_as_root_runs_programs_as_nobody_when_it_can(monkeypatch):
    """Where an unprivileged uid can reach the interpreter (not pyenv under a 0700 /root),
    the fallback drops root, so RLIMIT_NPROC applies and other users' processes are safe."""
    import rewards.execution.local as local

    executor = LocalExecutor(LIMITS, use_bwrap=False)
    monkeypatch.setattr(local, "_reachable_by_others", lambda prefixes: False)
    assert executor.run("import os\nprint(os.getuid())").stdout == "0\n"
    monkeypatch.setattr(local, "_reachable_by_others", lambda prefixes: True)
    result = executor.run("import os\nprint(os.getuid())\nopen('scratch.txt', 'w').write('ok')")
    assert result.ok and result.stdout == "65534\n"
