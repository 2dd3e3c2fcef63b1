"""vLLM's pure-Python modules (vllm 0.33.0), importable on a CPU from `.vllm_site`.

vLLM cannot run here, but its pure-Python modules import on a CPU: install them apart from
the project's environment (vLLM pins an older transformers) and the tests that need them find
them:

    pip download --no-deps vllm==0.33.0 -d /tmp/vllm && unzip -q /tmp/vllm/vllm-*.whl 'vllm/*' -d .vllm_site
    pip install --no-deps --target .vllm_site msgspec cbor2 pyzmq aiohttp multidict attrs yarl propcache \\
        aiohappyeyeballs aiosignal frozenlist openai-harmony openai pybase64 cachetools uvloop \\
        prometheus_client fastapi starlette

The directory is appended to `sys.path` (our own packages keep precedence). Without it a test
module that calls `import_vllm()` is skipped, saying so.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

SITE = Path(__file__).resolve().parents[1] / ".vllm_site"


def import_vllm():
    """The `vllm` package, or a module-level skip naming what is missing."""
    if not (SITE / "vllm").is_dir():
        pytest.skip(f"vLLM's sources are not in {SITE} (see tests/vllm_site.py)", allow_module_level=True)
    if str(SITE) not in sys.path:
        sys.path.append(str(SITE))
    try:
        import vllm
        import vllm.outputs
        import vllm.sampling_params
        from vllm.entrypoints.openai.completion.protocol import CompletionRequest, CompletionResponse  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"vLLM's pure-Python modules do not import from {SITE}: {exc}", allow_module_level=True)
    return vllm
