"""Run under ``mpiexec -n N``: one scenario of fastoptim.distributed per launch.

Every rank checks its own results with asserts (a failed assert fails the launch) and
rank 0 prints one JSON line of measurements for tests/test_distributed.py.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback

import numpy as np
from mpi4py import MPI

import fastoptim
import fastoptim.distributed as dist
from fastoptim.distributed import checkpoint as sharded_checkpoint

COMM = MPI.COMM_WORLD
RANK, SIZE = COMM.Get_rank(), COMM.Get_size()
SHAPES = {"W1": (200, 150), "b1": (200, 1), "W2": (30, 200), "b2": (30, 1), "emb": (40, 8)}
ALGORITHMS = {
    "adam": lambda p, **kw: fastoptim.Adam(p, lr=1e-2, **kw),
    "adamw": lambda p, **kw: fastoptim.AdamW(p, lr=1e-2, weight_decay=0.1, **kw),
    "sgd": lambda p, **kw: fastoptim.SGD(p, lr=1e-2, momentum=0.9, **kw),
    "nadam": lambda p, **kw: fastoptim.NAdam(
        p, lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True, **kw
    ),
    "rprop": lambda p, **kw: fastoptim.Rprop(p, lr=1e-2, **kw),  # step sizes start at lr
    "asgd": lambda p, **kw: fastoptim.ASGD(p, lr=1e-2, t0=1.0, **kw),  # averaging from step 3
    # float32 parameters, bfloat16 state: the rounding bits follow the global element index
    "adam bfloat16": lambda p, **kw: fastoptim.Adam(
        _float32(p), lr=1e-2, state_dtype="bfloat16", **kw
    ),
}


# int8 state: the 2- and 3-rank cuts fall inside A (at 8192 of its 11000 elements), so a
# rank holds a 2808-element part of it, which it quantizes as the whole layer is although
# it is smaller than 4096; 11000 is not a multiple of 256 (a partial last block)
INT8_SHAPES = {"A": (100, 110), "a": (100, 1), "B": (60, 100), "c": (40, 8)}
INT8_ALGORITHMS = {
    "adam int8": lambda p, **kw: fastoptim.Adam(p, lr=1e-2, state_dtype="int8", **kw),
    "adam int8 blocks of 2048": lambda p, **kw: fastoptim.Adam(
        p, lr=1e-2, state_dtype="int8", block_size=2048, **kw
    ),
    "sgd int8": lambda p, **kw: fastoptim.SGD(
        p, lr=1e-2, momentum=0.9, nesterov=True, state_dtype="int8", **kw
    ),
    "rmsprop int8": lambda p, **kw: fastoptim.RMSprop(
        p, lr=1e-3, momentum=0.9, state_dtype="int8", **kw
    ),
    "adamw bfloat16": lambda p, **kw: fastoptim.AdamW(p, lr=1e-2, state_dtype="bfloat16", **kw),
}


def _float32(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v.astype(np.float32) for k, v in arrays.items()}


def initial(shapes: dict = SHAPES) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {k: rng.standard_normal(s) for k, s in shapes.items()}


def rank_grads(t: int, rank: int, shapes: dict = SHAPES) -> dict[str, np.ndarray]:
    """Rank ``rank``'s gradients at step ``t``: different on every rank."""
    rng = np.random.default_rng(1000 * t + rank)
    return {"d" + k: rng.standard_normal(s) for k, s in shapes.items()}


def combined(t: int, reduce: str, cast=dict) -> dict[str, np.ndarray]:
    """What one process steps with: the ranks' gradients (``cast``) summed in rank order,
    or averaged."""
    per_rank = [cast(rank_grads(t, r)) for r in range(SIZE)]
    total = {k: _sum(per_rank, k) for k in per_rank[0]}
    return total if reduce == "sum" else {k: v / SIZE for k, v in total.items()}


def _sum(per_rank: list[dict[str, np.ndarray]], key: str) -> np.ndarray:
    total = per_rank[0][key].copy()
    for grads in per_rank[1:]:
        total += grads[key]
    return total


def parity() -> dict:
    """50 steps, different gradients per rank, against one process on the combined ones."""
    report = {}
    cases = [(name, reduce, None) for name in ALGORITHMS for reduce in ("sum", "mean")]
    cases += [("adamw", reduce, 20.0) for reduce in ("sum", "mean")]  # clipping across ranks
    if SIZE != 2:  # every case on 2 ranks (bit-identical); each algorithm once elsewhere
        cases = [("adam", "mean", None), ("sgd", "sum", None), ("adamw", "mean", 20.0)]
    for name, reduce, clip in cases:
        make = ALGORITHMS[name]
        options: dict = {"max_grad_norm": clip}
        if name == "adamw":  # groups: no decay on the biases, the embedding frozen
            options["groups"] = [
                fastoptim.Group("b*", weight_decay=0.0),
                fastoptim.Group(["emb"], frozen=True),
            ]
        sharded = dist.shard(make(initial(), **options), reduce=reduce)
        single = make(initial(), **options)
        cast = _float32 if name.endswith("bfloat16") else dict
        for t in range(1, 51):
            sharded.step(cast(rank_grads(t, RANK)))
            single.step(combined(t, reduce, cast))
        same = np.array_equal(sharded.params.buffer, single.params.buffer)
        if name.endswith("bfloat16"):  # the stored codes, gathered, are one process's too
            for key, state in single.state.items():
                gathered = sharded.gather(sharded.state[key].buffer, f"state.{key}")
                if RANK == 0:
                    same = same and np.array_equal(gathered, state.buffer)
        error = float(np.abs(sharded.params.buffer - single.params.buffer).max())
        scale = float(np.abs(single.params.buffer).max())
        if SIZE <= 2:
            assert same, f"{name} {reduce} clip={clip}: off by {error:.3g}"
        else:
            assert error <= 1e-12 * scale, f"{name} {reduce} clip={clip}: off by {error:.3g}"
        report[f"{name} {reduce} clip={clip}"] = {"bit_identical": same, "max_error": error}
        state_bytes = sum(s.buffer.nbytes for s in sharded.state.values())
        everyone = COMM.gather(state_bytes)
        whole = sum(s.buffer.nbytes for s in single.state.values())
        report[f"{name} state bytes per rank"] = {"ranks": everyone, "one process": whole}
        assert state_bytes <= whole / SIZE + 2 * 8192 * 8 * len(single.state)
    return report


def flattened_grads() -> dict:
    """Each rank's course gradients flattened the obvious way (``fastoptim.flatten(grads)``,
    layers 'dW1', ...): one flat step, the bits of the same step with the dict."""
    from_flat = dist.shard(ALGORITHMS["adam"](initial()), reduce="mean")
    from_dict = dist.shard(ALGORITHMS["adam"](initial()), reduce="mean")
    for t in range(1, 6):
        from_flat.step(fastoptim.flatten(rank_grads(t, RANK)))
        from_dict.step(rank_grads(t, RANK))
    same = np.array_equal(from_flat.params.buffer, from_dict.params.buffer)
    assert same
    return {"bit_identical": same}


def _made(name: str, **options):
    """The optimizer ``name`` (ALGORITHMS or INT8_ALGORITHMS) over its model, and the
    gradient of step t for it."""
    if name in INT8_ALGORITHMS:
        optimizer = INT8_ALGORITHMS[name](_float32(initial(INT8_SHAPES)), **options)
        return optimizer, lambda t: _float32(combined_for_launches(t, INT8_SHAPES))
    return ALGORITHMS[name](initial(), **options), combined_for_launches


def save_then_continue(directory: str, steps: str, name: str = "adamw") -> dict:
    """Train (rank 0 holds the whole gradient, so any number of ranks sums to the same),
    saving at the end; or load what another launch saved and go on."""
    first, last = (int(x) for x in steps.split(":"))
    made, gradient = _made(name, max_grad_norm=20.0)
    sharded = dist.shard(made, reduce="sum")
    if first > 1:
        sharded_checkpoint.load(directory, sharded)
        assert sharded.t == first - 1
    for t in range(first, last + 1):
        sharded.step(on_rank_0(gradient(t)))
    sharded_checkpoint.save(directory, sharded)
    single, _ = _made(name, max_grad_norm=20.0)
    for t in range(1, last + 1):
        single.step(gradient(t))
    same = np.array_equal(sharded.params.buffer, single.params.buffer)
    assert same, f"off by {np.abs(sharded.params.buffer - single.params.buffer).max():.3g}"
    same = same_stored_state(sharded, single)
    assert same, "the stored state differs"
    sharded_checkpoint.export(os.path.join(directory, "single.npz"), sharded)
    return {"t": sharded.t, "bit_identical": same}


def combined_for_launches(t: int, shapes: dict = SHAPES) -> dict[str, np.ndarray]:
    """The gradient of step ``t`` in save_then_continue, whatever the number of ranks: the
    sum over the 2 ranks of the first launch."""
    first, second = rank_grads(t, 0, shapes), rank_grads(t, 1, shapes)
    return {k: first[k] + second[k] for k in first}


def on_rank_0(grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``grads`` on rank 0 and zeros elsewhere: the ranks' sum is ``grads`` exactly, for
    any number of ranks."""
    return grads if RANK == 0 else {k: np.zeros_like(v) for k, v in grads.items()}


def same_stored_state(sharded, single) -> bool:
    """Whether every stored buffer (codes, scales, small layers' state), gathered from the
    ranks, is the single process's, bit for bit (on rank 0; True elsewhere)."""
    same = True
    whole = single.stored_buffers()
    for member, buffer in sharded.local.stored_buffers().items():
        gathered = sharded.gather(buffer, member)
        if RANK == 0:
            same = same and gathered.dtype == whole[member].dtype
            same = same and np.array_equal(gathered, whole[member])
    return same


def low_precision_parity() -> dict:
    """int8 and bfloat16 state sharded on any number of ranks (the whole gradient on rank
    0, so that the sums are exact): 30 steps with clipping and groups, the parameters and
    every stored buffer bit-identical with one process's."""
    report = {}
    for name, make in INT8_ALGORITHMS.items():
        options = {
            "max_grad_norm": 20.0,
            "groups": [fastoptim.Group(["c"], frozen=True), fastoptim.Group(["a"], lr=1e-3)],
        }
        sharded = dist.shard(make(_float32(initial(INT8_SHAPES)), **options), reduce="sum")
        single = make(_float32(initial(INT8_SHAPES)), **options)
        if "int8" in name:  # A and B quantized on every rank that holds a part of them
            assert sharded.local.int8.quantized == {"A", "B"} & set(sharded.local.layout.names)
        for t in range(1, 31):
            grads = _float32(combined_for_launches(t, INT8_SHAPES))
            sharded.step(on_rank_0(grads))
            single.step(grads)
        same = np.array_equal(sharded.params.buffer, single.params.buffer)
        same = same_stored_state(sharded, single) and same
        assert same, name
        report[name] = {
            "bit_identical": same,
            "state_nbytes": COMM.gather(sharded.local.state_nbytes),
        }
    return report


def killed_while_saving(directory: str) -> dict:
    """Save once; then rank 1 is killed in the middle of writing the next save."""
    sharded = dist.shard(ALGORITHMS["adam"](initial()), reduce="mean")
    sharded.step(rank_grads(1, RANK))
    sharded_checkpoint.save(directory, sharded)
    sharded.step(rank_grads(2, RANK))
    if RANK == 1:
        original = np.savez

        def die_halfway(file, **arrays):
            file.write(b"PK\x03\x04 half a shard")
            file.flush()
            os.kill(os.getpid(), signal.SIGKILL)
            original(file, **arrays)

        np.savez = die_halfway
    sharded_checkpoint.save(directory, sharded)
    raise AssertionError("the save should not have finished")


def load_after_kill(directory: str) -> dict:
    sharded = dist.shard(ALGORITHMS["adam"](initial()), reduce="mean")
    sharded_checkpoint.load(directory, sharded)
    assert sharded.t == 1, sharded.t
    single = ALGORITHMS["adam"](initial())
    single.step({k: (rank_grads(1, 0)[k] + rank_grads(1, 1)[k]) / 2 for k in rank_grads(1, 0)})
    assert np.array_equal(sharded.params.buffer, single.params.buffer)
    sharded.step(rank_grads(2, RANK))  # and training goes on
    return {"t": 1}


def bad_input() -> dict:
    """Rank 1 passes a gradient of the wrong shape: every rank raises, nothing changes,
    and the next good step works on every rank (no rank is left waiting)."""
    sharded = dist.shard(ALGORITHMS["adam"](initial()), reduce="mean")
    sharded.step(rank_grads(1, RANK))
    before = sharded.params.buffer.copy()
    state_before = {k: s.buffer.copy() for k, s in sharded.state.items()}
    grads = rank_grads(2, RANK)
    if RANK == 1:
        grads["dW1"] = grads["dW1"].T.copy()
    expected = ValueError if RANK == 1 else dist.RankError
    try:
        sharded.step(grads)
    except expected as error:
        message = str(error)
    else:
        raise AssertionError("no error")
    assert np.array_equal(sharded.params.buffer, before) and sharded.t == 1
    assert all(np.array_equal(s.buffer, state_before[k]) for k, s in sharded.state.items())
    sharded.step(rank_grads(2, RANK))
    assert sharded.t == 2
    return {"messages": COMM.gather(message)}


def import_single(path: str, name: str = "adamw") -> dict:
    """A single-file checkpoint (export's, read by fastoptim.load too) imported on the
    ranks continues as the single process does."""
    made, gradient = _made(name, max_grad_norm=20.0)
    sharded = dist.shard(made, reduce="sum")
    sharded_checkpoint.import_from(path, sharded)
    whole, _ = _made(name, max_grad_norm=20.0)
    fastoptim.load(path, whole)
    assert sharded.t == whole.t and np.array_equal(sharded.params.buffer, whole.params.buffer)
    for t in range(whole.t + 1, whole.t + 6):
        sharded.step(on_rank_0(gradient(t)))
        whole.step(gradient(t))
    assert np.array_equal(sharded.params.buffer, whole.params.buffer)
    assert same_stored_state(sharded, whole), "the stored state differs"
    return {"t": sharded.t}


SCENARIOS = {
    "import_single": import_single,
    "parity": parity,
    "low_precision_parity": low_precision_parity,
    "flattened_grads": flattened_grads,
    "save_then_continue": save_then_continue,
    "killed_while_saving": killed_while_saving,
    "load_after_kill": load_after_kill,
    "bad_input": bad_input,
}

if __name__ == "__main__":
    # scenario[:argument] ... : several scenarios in one launch (each launch costs seconds)
    results = {}
    for spec in sys.argv[1:]:
        name, *arguments = spec.split("=")
        try:
            results[spec] = SCENARIOS[name](*arguments)
        except BaseException:  # a failed assert on one rank: stop every rank, not wait
            traceback.print_exc()
            sys.stderr.flush()
            COMM.Abort(1)
    if RANK == 0:
        print(json.dumps(results), flush=True)
