"""Numba settings for every fastoptim kernel, read once from the environment at import.

Environment variables
---------------------
FASTOPTIM_CACHE
    ``1`` (default) keeps compiled kernels in Numba's on-disk cache when a writable cache
    directory exists; ``0`` turns the cache off.
FASTOPTIM_FASTMATH
    Empty (default): strict IEEE arithmetic, NaN and Inf behave as in numpy. Otherwise a
    comma-separated subset of ``nsz,arcp,contract,afn,reassoc``. ``nnan`` and ``ninf`` are
    refused: they would let a NaN gradient slip through unnoticed.
FASTOPTIM_SERIAL_BELOW
    Buffers with fewer elements than this run the serial twin of a kernel, which skips the
    cost of waking the thread pool (default 16384).
"""

from __future__ import annotations

import os

ALLOWED_FASTMATH_FLAGS = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})


def _read_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name}={raw!r}: use 1 or 0")


def _read_fastmath() -> frozenset[str]:
    raw = os.environ.get("FASTOPTIM_FASTMATH", "").strip()
    flags = frozenset(flag.strip() for flag in raw.split(",") if flag.strip())
    unknown = flags - ALLOWED_FASTMATH_FLAGS
    if unknown:
        raise ValueError(
            f"FASTOPTIM_FASTMATH: {sorted(unknown)} not allowed; "
            f"choose from {sorted(ALLOWED_FASTMATH_FLAGS)} (nnan/ninf are never used)"
        )
    return flags


def _read_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: use a whole number") from None
    if value < 0:
        raise ValueError(f"{name}={raw!r}: use a number >= 0")
    return value


CACHE: bool = _read_bool("FASTOPTIM_CACHE", True)
FASTMATH: frozenset[str] = _read_fastmath()
SERIAL_BELOW: int = _read_int("FASTOPTIM_SERIAL_BELOW", 16384)
