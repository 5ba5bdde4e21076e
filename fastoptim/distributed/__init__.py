"""ZeRO stage 1 over MPI: optimizer state sharded across processes, bit-identical to one
process where the arithmetic allows it.

Rank r of N owns one contiguous slice of the flat buffer (about 1/N of it): the optimizer
state exists only for that slice. Each step reduce-scatters the ranks' gradients, updates
each slice on its rank, and allgathers the parameters; per step every rank sends and
receives about 2 (N - 1) / N of the buffer. Needs ``pip install 'fastoptim[mpi]'``
(mpi4py and MPICH, which provides ``mpiexec``)::

    opt = fastoptim.distributed.shard(fastoptim.AdamW(params, lr=1e-3))
    opt.step(grads)        # this rank's gradients; every rank calls step
"""

from __future__ import annotations

from typing import Any

from fastoptim.distributed import checkpoint
from fastoptim.distributed.sharded import RankError, ShardedOptimizer
from fastoptim.optim import Optimizer


def shard(optimizer: Optimizer, comm: Any = None, reduce: str = "mean") -> ShardedOptimizer:
    """Shard ``optimizer``'s state over the ranks of ``comm`` (default ``MPI.COMM_WORLD``).

    Parameters
    ----------
    optimizer : fastoptim optimizer
        Any fastoptim optimizer, built the same way on every rank (same parameters,
        settings and groups). Its full-size state is released: use the returned object.
    comm : mpi4py communicator, optional
    reduce : 'mean' or 'sum'
        How the ranks' gradients combine: :math:`g = \\frac{1}{N}\\sum_r g_r` or
        :math:`\\sum_r g_r`.

    Returns
    -------
    ShardedOptimizer
        ``step(grads)`` takes this rank's gradients; ``params`` are the full parameters,
        the same on every rank after each step; ``state`` is this rank's slice.
    """
    if optimizer.declaration.kernel is None:  # checked before anything is imported or released
        raise TypeError(
            f"{type(optimizer).__name__} cannot be sharded: its step needs sums over whole "
            "layers (Adafactor: the RMS of the parameters and of the update, the row and "
            "column means; LAMB: each layer's norms for its trust ratio), which a rank's "
            "slice of the buffer does not hold; run it unsharded"
        )
    if optimizer.accumulated is not None:
        raise TypeError(
            "an optimizer with accumulation_steps > 1 cannot be sharded yet; accumulate the "
            "gradients before sharded.step, or step every micro-batch"
        )
    if optimizer.ema is not None:
        raise TypeError(
            "an optimizer with ema_decay cannot be sharded yet: the weight EMA would be "
            "kept in slices that no rank gathers; shard it without ema_decay"
        )
    if optimizer.running_state():
        raise TypeError(
            f"{type(optimizer).__name__} cannot be sharded yet: it carries values from step "
            "to step besides its buffers (Schedule-Free AdamW: its train/eval mode and weight "
            "sums), which sharded optimizers and their checkpoints do not keep; run it "
            "unsharded"
        )
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError(
            "fastoptim.distributed needs mpi4py and an MPI library: "
            "pip install 'fastoptim[mpi]' (mpi4py and mpich, which provides mpiexec)"
        ) from error
    return ShardedOptimizer(optimizer, MPI.COMM_WORLD if comm is None else comm, reduce)


__all__ = ["RankError", "ShardedOptimizer", "checkpoint", "shard"]
