"""Checkpoints: an optimizer's parameters, state, hyper-parameters and step in one file.

The file is an ``.npz`` archive (a zip of ``.npy`` arrays, each with a CRC-32) that loads with
``allow_pickle=False``, so opening it executes no code:

- ``manifest``: JSON text with the format version, the algorithm, its hyper-parameters, the
  step ``t``, the layout (layer names, shapes, dtype) and what the algorithm carries from
  step to step, if anything (``running``: Schedule-Free AdamW's mode and weight sums);
- ``params``: the flat parameter buffer;
- ``state.<name>``: one flat buffer per optimizer state (``exp_avg``, ``velocity``, ...), as
  stored (bfloat16 or int8 codes);
- int8 state adds ``scales.<name>`` (the block scales of the quantized layers) and
  ``small.<name>`` (the float32 state of the layers too small to quantize);
- ``ema``: the weight EMA (``ema_decay``), laid out like ``params``;
- ``accumulated``: the sum of the gradients waiting (``accumulation_steps``; the manifest
  says how many, ``micro_steps``), laid out like ``params``.

Saving is atomic: the archive is written to a temporary file in the same directory, flushed
to disk, renamed over ``path`` and the directory entry synced, so a crash at any moment
leaves either the previous checkpoint or the new one. Loading reads and checks everything
before it writes anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from typing import Any, BinaryIO

import numpy as np

from fastoptim.flat import FlatParams, Layout, layers_difference
from fastoptim.optim import blockwise
from fastoptim.optim.optimizer import Optimizer

FORMAT = "fastoptim-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read, or that does not fit the optimizer."""


def save(path: str | os.PathLike, optimizer: Optimizer) -> None:
    """Write ``optimizer``'s parameters, state, hyper-parameters and ``t`` to ``path``, atomically.

    The previous file at ``path``, if any, stays complete until the new one has been fully
    written and synced; then it is replaced in one rename.
    """
    manifest = {"format": FORMAT, "version": VERSION, **describe(optimizer, optimizer.t)}
    arrays = {"manifest": np.array(json.dumps(manifest)), "params": optimizer.params.buffer}
    arrays.update(optimizer.stored_buffers())
    write_atomically(path, lambda file: np.savez(file, **arrays))  # type: ignore[arg-type]


def describe(optimizer: Optimizer, t: int, state_names: list[str] | None = None) -> dict[str, Any]:
    """What a manifest says of an optimizer: its algorithm, settings, groups, step ``t``,
    layout and state names (JSON-ready)."""
    described = {
        "algorithm": type(optimizer).__name__,
        "hyperparameters": optimizer.hyperparameters(),
        "groups": optimizer.group_settings(),
        "t": t,
        "layout": optimizer.layout.describe(),
        "state_names": list(optimizer.state) if state_names is None else state_names,
    }
    running = optimizer.running_state()
    if running:  # what the algorithm carries from step to step (Schedule-Free's sums)
        described["running"] = running
    if optimizer.accumulated is not None:  # how many gradients the buffer sums
        described["micro_steps"] = optimizer.micro_steps
    return described


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """``write(file)`` into a temporary file next to ``path``, synced, then renamed over
    ``path`` and the directory synced: ``path`` is the old file or the new one, never torn."""
    directory, name = os.path.split(os.path.abspath(os.fspath(path)))
    descriptor, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(descriptor, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        _remove_quietly(temporary)
        raise
    _sync_directory(directory)


def load(path: str | os.PathLike, optimizer: Optimizer) -> None:
    """Restore what :func:`save` wrote into ``optimizer`` (its parameters too).

    Raises :class:`CheckpointError` for a truncated or corrupted file, a file of another
    algorithm or layout, or NaN/Inf in it; the optimizer and its parameters are then unchanged.
    """
    manifest, params, states, int8_parts, like_params = _read(os.fspath(path))
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise CheckpointError(
            f"{path} is not a fastoptim checkpoint of version {VERSION} "
            f"(format {manifest.get('format')!r}, version {manifest.get('version')!r})"
        )
    target = optimizer.params.buffer
    _check_flat(params, target, f"{path}: params")
    if not np.isfinite(params).all():
        raise CheckpointError(f"{path}: params hold NaN or Inf; this checkpoint cannot continue")
    saved_layout = _saved_layout(manifest.get("layout"), optimizer.layout, path)
    state: dict[str, dict[str, np.ndarray]] = {}
    for key, flat in states.items():
        state[key] = {}
        if key in optimizer.state:
            # the state's dtype may be a stored one (bfloat16 codes): load_state_dict checks
            # it against this optimizer's state_dtype, and says how to convert
            own = optimizer.state[key].buffer
            _check_flat(flat, own, f"{path}: state {key!r}", any_dtype=True)
            stored = None if flat.dtype == saved_layout.dtype else flat.dtype
            views = FlatParams(optimizer.state_layout(key, saved_layout), flat, stored_dtype=stored)
            state[key] = {name: views[name] for name in saved_layout.names}
    state_dict = {
        "algorithm": manifest.get("algorithm"),
        "hyperparameters": hyperparameters_from_json(manifest.get("hyperparameters")),
        "groups": manifest.get("groups", []),
        "t": manifest.get("t"),
        "layout": manifest.get("layout"),
        "state": state,
    }
    if "running" in manifest:
        state_dict["running"] = manifest["running"]
    ema, accumulated = like_params["ema"], like_params["accumulated"]
    if ema is not None:
        _check_flat(ema, target, f"{path}: ema")
        state_dict["ema"] = _by_layer(FlatParams(saved_layout, ema))
    if accumulated is not None:
        _check_flat(accumulated, target, f"{path}: accumulated")
        state_dict["accumulated"] = {
            "micro_steps": manifest.get("micro_steps"),
            "grads": _by_layer(FlatParams(saved_layout, accumulated)),
        }
    if int8_parts:
        saved = state_dict["hyperparameters"]
        block = blockwise.block_elements(
            saved.get("block_size") if isinstance(saved, dict) else None
        )
        quantized = blockwise.quantized_layers(saved_layout)
        spans = blockwise.block_spans(saved_layout, quantized, block)
        small = blockwise.small_layout(saved_layout, quantized)
        state_dict["scales"] = _int8_layers(int8_parts, state, spans, small, path)
    try:
        optimizer.load_state_dict(state_dict)  # checks everything, then writes the state
    except (KeyError, ValueError, TypeError) as error:
        raise CheckpointError(f"{path} does not fit this optimizer: {error}") from error
    # cannot fail: same layers, shapes and dtype, checked above
    if saved_layout == optimizer.layout:
        np.copyto(target, params)
    else:  # the same layers laid out in another order (e.g. grouped since)
        saved = FlatParams(saved_layout, params)
        for name in saved_layout.names:
            np.copyto(optimizer.params[optimizer.params.prefix + name], saved[name])


def _by_layer(flat: FlatParams) -> dict[str, np.ndarray]:
    return {name: flat[flat.prefix + name] for name in flat.layout.names}


def _saved_layout(described: object, layout: Layout, path: object) -> Layout:
    """The layout the file was written with, once known to hold the same layers as ``layout``."""
    difference = layers_difference(described, layout.describe())
    if difference is not None:
        raise CheckpointError(f"{path} was saved for another model: {difference}")
    assert isinstance(described, dict)
    if described["names"] == list(layout.names):
        return layout
    return Layout(described["names"], described["shapes"], described["dtype"])


def _int8_layers(
    parts: dict[str, np.ndarray],
    state: dict[str, dict[str, np.ndarray]],
    spans: dict[str, slice],
    small: Layout,
    path: object,
) -> dict[str, dict[str, np.ndarray]]:
    """int8 state's per-layer arrays from the file's flat ones (the quantized layers' block
    scales at ``spans``, the ``small`` layers' float32 state): the small layers' state put
    into ``state`` in place of their unused codes, and the block scales returned."""
    scales: dict[str, dict[str, np.ndarray]] = {}
    for key in state:
        flat_scales, flat_small = parts.get(f"scales.{key}"), parts.get(f"small.{key}")
        n_blocks = max((span.stop for span in spans.values()), default=0)
        if flat_scales is None or flat_small is None:
            raise CheckpointError(f"{path}: int8 state {key!r} lacks its scales or small layers")
        _check_flat(flat_scales, np.empty(n_blocks, np.float32), f"{path}: scales {key!r}")
        _check_flat(flat_small, np.empty(small.size, np.float32), f"{path}: small {key!r}")
        scales[key] = {name: flat_scales[span] for name, span in spans.items()}
        small_views = FlatParams(small, flat_small)
        state[key].update({name: small_views[name] for name in small.names})
    return scales


def _read(
    path: str,
) -> tuple[
    dict[str, Any],
    np.ndarray,
    dict[str, np.ndarray],
    dict[str, np.ndarray],
    dict[str, np.ndarray | None],
]:
    """Every array of the file, fully read (so each member's CRC-32 is verified): the
    manifest, the parameters, the state, int8's other parts and the buffers laid out like
    the parameters (``ema``, ``accumulated``: None where the file has none)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            members = {name: archive[name] for name in archive.files}
        manifest = json.loads(str(members.pop("manifest")))
        params = members.pop("params")
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise CheckpointError(
            f"{path} cannot be read as a fastoptim checkpoint (truncated, corrupted or another "
            f"kind of file): {type(error).__name__}: {error}"
        ) from error
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{path}: the manifest is not a JSON object")
    states, int8_parts = {}, {}
    ema = accumulated = None
    for name, array in members.items():
        if name.startswith(("scales.", "small.")):
            int8_parts[name] = array
        elif name.startswith("state."):
            states[name.removeprefix("state.")] = array
        elif name == "ema":
            ema = array
        elif name == "accumulated":
            accumulated = array
        else:
            raise CheckpointError(f"{path}: unexpected entry {name!r}")
    return manifest, params, states, int8_parts, {"ema": ema, "accumulated": accumulated}


def _check_flat(array: np.ndarray, target: np.ndarray, label: str, any_dtype: bool = False) -> None:
    if array.shape != target.shape or (array.dtype != target.dtype and not any_dtype):
        raise CheckpointError(
            f"{label} is a {array.dtype} array of shape {array.shape}; this optimizer's "
            f"buffers are {target.dtype} of shape {target.shape} (another model or dtype)"
        )


def hyperparameters_from_json(saved: object) -> object:
    """Saved hyper-parameters as the optimizer takes them (a non-dict is returned as it is,
    for load_state_dict to refuse)."""
    # JSON has no tuples: betas come back as lists
    if not isinstance(saved, dict):
        return saved
    return {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()}


def _sync_directory(directory: str) -> None:
    """Make the rename itself durable (a no-op where directories cannot be opened)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)
