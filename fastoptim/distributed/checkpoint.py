"""Checkpoints of a sharded optimizer: one file per rank plus a manifest, in a directory.

Each rank writes its slice of the parameters and of the state to
``shard-<generation>-<rank>.npz``, atomically; when every rank has finished, rank 0 writes
``manifest.json`` (atomically too), which names the files of that generation, and then
removes the files of older generations. A crash or a killed rank before the manifest is
replaced leaves the previous manifest and its files: the previous checkpoint stays
loadable. Loading works on any number of ranks: each rank reads the parts of the old
slices that make up its new slice.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from fastoptim import checkpoint
from fastoptim.distributed.partition import buffer_cuts, buffer_kind
from fastoptim.distributed.sharded import ShardedOptimizer
from fastoptim.flat import layers_difference
from fastoptim.optim import state_dtypes

FORMAT = "fastoptim-sharded-checkpoint"
VERSION = 1
MANIFEST = "manifest.json"


def save(directory: str | os.PathLike, sharded: ShardedOptimizer) -> None:
    """Write every rank's shard, then the manifest (every rank must call it)."""
    directory = Path(directory)
    comm, rank = sharded.comm, sharded.rank
    if rank == 0:
        directory.mkdir(parents=True, exist_ok=True)
    generation = comm.bcast(f"{sharded.t}-{uuid.uuid4().hex[:8]}" if rank == 0 else None)
    name = f"shard-{generation}-{rank}.npz"
    arrays = {"params": sharded.params.buffer[sharded.start : sharded.stop]}
    arrays.update(sharded.local.stored_buffers())
    comm.Barrier()  # the directory exists

    def write(file: BinaryIO) -> None:
        np.savez(file, **arrays)  # type: ignore[arg-type]

    sharded.agree(lambda: checkpoint.write_atomically(directory / name, write), errors=(OSError,))
    files = comm.gather(name)
    if rank == 0:
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            **checkpoint.describe(sharded.optimizer, sharded.t, list(sharded.state)),
            "cuts": sharded.cuts,
            "files": files,
        }
        checkpoint.write_atomically(
            directory / MANIFEST, lambda f: f.write(json.dumps(manifest, indent=1).encode())
        )
        for old in directory.glob("shard-*.npz"):
            if old.name not in files:
                old.unlink()
    comm.Barrier()


def load(directory: str | os.PathLike, sharded: ShardedOptimizer) -> None:
    """Restore what :func:`save` wrote, on this or another number of ranks (every rank
    must call it). Everything is checked on every rank before anything changes."""
    directory = Path(directory)
    manifest, params, states = sharded.agree(lambda: _read_slice(directory, sharded))
    sharded.restore(
        params,
        states,
        t=manifest["t"],
        hyperparameters=dict(checkpoint.hyperparameters_from_json(manifest["hyperparameters"])),  # type: ignore[call-overload]
        groups=manifest.get("groups", []),
    )


def export(path: str | os.PathLike, sharded: ShardedOptimizer) -> None:
    """Write one non-distributed checkpoint (``fastoptim.load`` reads it): the slices of
    the state are gathered on rank 0, which writes the file."""
    gathered = {
        member: sharded.gather(buffer, member)
        for member, buffer in sharded.local.stored_buffers().items()
    }
    if sharded.rank == 0:
        whole = sharded.whole_optimizer(gathered)  # type: ignore[arg-type]  # whole on rank 0
        sharded.agree(lambda: checkpoint.save(path, whole), errors=(OSError,))
    else:
        sharded.agree(lambda: None)


def import_from(path: str | os.PathLike, sharded: ShardedOptimizer) -> None:
    """Load a non-distributed checkpoint (``fastoptim.save``'s file) into the ranks: each
    reads the file and keeps its slice of the state (every rank must call it)."""

    def read() -> Any:
        whole = sharded.whole_optimizer(None)
        checkpoint.load(path, whole)
        return whole

    whole = sharded.agree(read, errors=(OSError, checkpoint.CheckpointError))
    sharded.restore(
        whole.params.buffer[sharded.start : sharded.stop],
        {member: buffer[sharded.own(member)] for member, buffer in whole.stored_buffers().items()},
        t=whole.t,
        hyperparameters=whole.hyperparameters(),
        groups=whole.group_settings(),
    )


def _read_slice(directory: Path, sharded: ShardedOptimizer):
    """The manifest, and this rank's slice of the parameters and of each state, cut from
    the old shards it overlaps."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no sharded checkpoint in {directory} (no {MANIFEST})") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ValueError(
            f"{directory / MANIFEST} is not a fastoptim sharded checkpoint of version {VERSION}"
        )
    optimizer = sharded.optimizer
    if manifest["algorithm"] != type(optimizer).__name__:
        raise ValueError(
            f"{directory} was saved by {manifest['algorithm']}, not {type(optimizer).__name__}"
        )
    if manifest["layout"] != optimizer.layout.describe():  # the same layers in the same order
        difference = layers_difference(manifest["layout"], optimizer.layout.describe()) or (
            f"its layers are in the order {manifest['layout']['names'][:8]}, this optimizer's "
            f"{list(optimizer.layout.names[:8])}"
        )
        raise ValueError(f"{directory} was saved for another model: {difference}")
    if sorted(manifest["state_names"]) != sorted(sharded.state):
        raise ValueError(
            f"{directory} holds the state {manifest['state_names']}, not {list(sharded.state)}"
        )
    saved_state_dtype = (
        manifest["hyperparameters"].get("state_dtype") or manifest["layout"]["dtype"]
    )
    if saved_state_dtype != optimizer.state_dtype:
        raise ValueError(
            f"{directory} holds {saved_state_dtype} state but this optimizer stores "
            f"state_dtype={optimizer.state_dtype!r}; load it into an optimizer of that "
            "state_dtype (or export it, and convert the single file's state_dict)"
        )
    own = {"params": sharded.params.buffer[sharded.start : sharded.stop]}
    own.update(sharded.local.stored_buffers())
    read = {member: np.empty_like(buffer) for member, buffer in own.items()}
    old_cuts = buffer_cuts(optimizer.layout, manifest["cuts"], sharded.quantized, sharded.block)
    for rank, name in enumerate(manifest["files"]):
        path = directory / name
        members: dict[str, np.ndarray] | None = None
        for member, target in read.items():
            cuts, mine = old_cuts[buffer_kind(member)], sharded.own(member)
            low, high = max(cuts[rank], mine.start), min(cuts[rank + 1], mine.stop)
            if high <= low:
                continue
            if members is None:
                with np.load(path, allow_pickle=False) as archive:
                    members = {key: archive[key] for key in archive.files}
            array = members.get(member)
            if (
                array is None
                or array.shape != (cuts[rank + 1] - cuts[rank],)
                or array.dtype != target.dtype
            ):
                raise ValueError(f"{path}: {member} is not the slice the manifest describes")
            target[low - mine.start : high - mine.start] = array[
                low - cuts[rank] : high - cuts[rank]
            ]
    for member, array in read.items():
        values = state_dtypes.float_values(array, "bfloat16") if array.dtype == np.uint16 else array
        if not np.isfinite(values).all():  # int8 codes are always finite; scales are float32
            raise ValueError(f"{directory}: {member} holds NaN or Inf; it cannot continue training")
    params = read.pop("params")
    return manifest, params, read
