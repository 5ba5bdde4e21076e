"""Import and first use in a fresh process: cache on, cache off, and no writable cache at all."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

FIRST_STEP = """
import numpy as np
import fastoptim
params = {"W1": np.ones((3, 2)), "b1": np.zeros((3, 1))}
opt = fastoptim.Adam(params, lr=0.1)
opt.step({"dW1": np.ones((3, 2)), "db1": np.ones((3, 1))})
assert np.allclose(params["W1"], 0.9), params["W1"]
print("stepped", fastoptim.kernels.adam_update.compiled_variants())
"""

NO_CACHE_LOCATION = """
import numba.core.caching as caching
impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl
impl._locator_classes = []  # as if no cache directory were writable anywhere
"""

CACHE_KIND = """
(kernel,) = fastoptim.kernels.adam_update.compiled_variants().values()
print("cache:", type(kernel._cache).__name__)
"""


def run_fresh(code: str, **env: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


@pytest.mark.parametrize(("setting", "kind"), [("1", "FunctionCache"), ("0", "NullCache")])
def test_import_and_first_step(setting, kind):
    output = run_fresh(FIRST_STEP + CACHE_KIND, FASTOPTIM_CACHE=setting)
    assert "stepped" in output and f"cache: {kind}" in output


def test_no_writable_cache_directory_falls_back_to_memory():
    output = run_fresh(NO_CACHE_LOCATION + FIRST_STEP + CACHE_KIND)
    assert "stepped" in output and "cache: NullCache" in output


def test_bad_settings_are_refused_with_the_fix():
    completed = subprocess.run(
        [sys.executable, "-c", "import fastoptim"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "FASTOPTIM_FASTMATH": "nnan"},
    )
    assert completed.returncode != 0
    assert (
        "FASTOPTIM_FASTMATH" in completed.stderr and "nnan/ninf are never used" in completed.stderr
    )
