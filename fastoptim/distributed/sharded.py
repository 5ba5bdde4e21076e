"""ShardedOptimizer: ZeRO stage 1 over MPI. Each rank keeps optimizer state for one slice.

A step: (1) every rank checks its gradients, and all learn whether any rank refused its
input; (2) the flat gradients are reduce-scattered, so each rank receives the sum over ranks
of its slice; (3) the clipping norm and the NaN/Inf flag are reduced across ranks, so every
rank takes the same decision; (4) each rank runs the optimizer's kernel on its slice, with
state for that slice only; (5) the updated slices are allgathered into every rank's full
parameter buffer. The collectives work on the flat buffers themselves.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from fastoptim import kernels
from fastoptim.distributed.partition import (
    boundaries,
    buffer_cuts,
    buffer_kind,
    slice_groups,
    slice_layout,
)
from fastoptim.flat import FlatParams
from fastoptim.kernels.norm import reduce_block_sums
from fastoptim.optim import Optimizer
from fastoptim.optim.groups import Group, ResolvedGroup, restored_groups
from fastoptim.optim.hyperparameters import check_step
from fastoptim.optim.optimizer import GradsLike, Piece


class RankError(RuntimeError):
    """Another rank refused its input; this rank stopped too, with nothing changed."""


class ShardedOptimizer:
    """``optimizer`` sharded over the ranks of ``comm`` (see :func:`fastoptim.distributed.shard`)."""

    def __init__(self, optimizer: Optimizer, comm: Any, reduce: str = "mean") -> None:
        from mpi4py import MPI

        if reduce not in ("mean", "sum"):
            raise ValueError(f"reduce must be 'mean' or 'sum'; got {reduce!r}")
        self.comm, self.reduce = comm, reduce
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.optimizer = optimizer
        self.layout = optimizer.layout
        self.params = optimizer.params  # the full, replicated parameters
        self.cuts = boundaries(self.layout, self.size)
        self.start, self.stop = self.cuts[self.rank], self.cuts[self.rank + 1]
        self.counts = [b - a for a, b in zip(self.cuts, self.cuts[1:], strict=False)]
        # int8 state: the whole model's quantized layers are quantized in every slice, in
        # the same blocks (the cuts fall on block boundaries)
        int8 = optimizer.int8
        self.quantized = None if int8 is None else int8.quantized
        self.block = 0 if int8 is None else int8.block
        self.buffer_cuts = buffer_cuts(self.layout, self.cuts, self.quantized, self.block)
        self.local = self._make_local(
            optimizer.hyperparameters(), optimizer.groups, optimizer.t, optimizer.lr_as_set
        )
        whole = optimizer.stored_buffers()
        for member, buffer in self.local.stored_buffers().items():
            buffer[...] = whole[member][self.own(member)]
        self._send = np.zeros(self.layout.size, dtype=self.layout.dtype)  # for dict grads
        self.received = self.local.params.zeros_like().buffer  # this rank's summed slice
        self._mpi_type = MPI.DOUBLE if self.layout.dtype == np.float64 else MPI.FLOAT
        self._sum, self._min, self._max = MPI.SUM, MPI.MIN, MPI.MAX
        self._in_place, self._double = MPI.IN_PLACE, MPI.DOUBLE
        self._flag = np.zeros(1, dtype=np.int64)  # for one-integer collectives
        # the clipping norm's block sums of every rank, side by side in layer order
        n_blocks = sum(piece.norm_bounds.size - 1 for piece in self.local.plan(self.received))
        self._block_counts = comm.allgather(n_blocks)
        self._block_offsets = [sum(self._block_counts[:r]) for r in range(self.size)]
        self._block_sums = np.empty(sum(self._block_counts), dtype=np.float64)
        self.last_grad_norm: float | None = None
        _release_state(optimizer)

    def _make_local(
        self, settings: dict, groups: Sequence[ResolvedGroup], t: int, lr: Any = None
    ) -> Optimizer:
        """An optimizer of the same class with ``settings`` over this rank's slice of the
        parameter buffer (a view: its updates land in the full buffer), with state for the
        slice only. Making it checks the settings and writes nothing."""
        layout = slice_layout(self.layout, self.start, self.stop)
        params = FlatParams(layout, self.params.buffer[self.start : self.stop])
        local = _like(
            self.optimizer,
            params,
            settings,
            slice_groups(groups, layout.names),
            t,
            lr,
            max_grad_norm=None,  # clipping is done here, across ranks
            nonfinite="ignore",  # so is the NaN/Inf check
        )
        local.first_index = self.start  # the rounding bits of low-precision state
        if self.quantized is not None:
            local.set_quantized_layers(self.quantized & set(layout.names))
        return local

    def own(self, member: str) -> slice:
        """This rank's slice of the whole stored buffer ``member`` (``'state.exp_avg'``,
        ``'scales.exp_avg'``, ...; see ``Optimizer.stored_buffers``)."""
        cuts = self.buffer_cuts[buffer_kind(member)]
        return slice(cuts[self.rank], cuts[self.rank + 1])

    # -- the step -------------------------------------------------------------------------------
    @property
    def t(self) -> int:
        return self.local.t

    @property
    def state(self) -> dict[str, FlatParams]:
        """This rank's slice of every state buffer."""
        return self.local.state

    def step(self, grads: GradsLike) -> None:
        """One update with this rank's gradients ``grads`` (any form the optimizer's step
        takes), reduced over the ranks by sum or mean. Every rank must call it."""
        t = self.t + 1
        rates = self.local.learning_rates(t)  # the same on every rank
        send = self.agree(lambda: self.optimizer.flat_gradients(grads, out=self._send))
        self.comm.Reduce_scatter(
            [send, self._mpi_type],
            [self.received, self._mpi_type],
            recvcounts=self.counts,
            op=self._sum,
        )
        pieces = self.local.plan(self.received)
        scale = 1.0 / self.size if self.reduce == "mean" else 1.0
        known_finite = None
        if self.optimizer.settings.max_grad_norm is not None:
            norm = self._global_norm(pieces) * scale
            self.last_grad_norm = norm
            known_finite = math.isfinite(norm)
            scale *= min(1.0, self.optimizer.settings.max_grad_norm / (norm + 1e-6))
        elif self.optimizer.nonfinite.policy != "ignore":
            local = kernels.finite.all_finite([piece.grad for piece in pieces])
            self._flag[0] = int(local)
            self.comm.Allreduce(self._in_place, self._flag, op=self._min)
            known_finite = bool(self._flag[0])
        offending = lambda: self._offending(pieces)  # noqa: E731 - called on every rank or none
        if not self.optimizer.nonfinite.allows([], offending, known_finite):
            return
        self.local.apply(pieces, t, rates, scale)
        self.allgather_params()
        self.local.t = self.optimizer.t = t

    def allgather_params(self) -> None:
        """Every rank's slice of the parameter buffer into every rank's buffer, in place."""
        self.comm.Allgatherv(
            self._in_place, [self.params.buffer, self.counts, self.cuts[:-1], self._mpi_type]
        )

    def agree(
        self,
        build: Callable[[], T],
        errors: tuple[type[Exception], ...] = (),
    ) -> T:
        """``build()`` on every rank; if any rank raised (bad input: TypeError, ValueError,
        KeyError, or one of ``errors``), every rank raises, the failing rank its own error,
        so that no rank is left waiting in a collective."""
        caught: tuple[type[Exception], ...] = (TypeError, ValueError, KeyError, *errors)
        try:
            result, failure = build(), None
        except caught as error:
            result, failure = None, error
        # one small integer collective when every rank is fine; messages only otherwise
        self._flag[0] = 0 if failure is None else 1
        self.comm.Allreduce(self._in_place, self._flag, op=self._max)
        if self._flag[0]:
            messages = self.comm.allgather(
                None if failure is None else f"{type(failure).__name__}: {failure}"
            )
            if failure is not None:
                raise failure
            for rank, message in enumerate(messages):
                if message is not None:
                    raise RankError(
                        f"rank {rank} refused its input ({message}); nothing was changed"
                    )
        return result  # type: ignore[return-value]

    def _global_norm(self, pieces: list[Piece]) -> float:
        """The 2-norm of the summed gradients over every rank, as one process takes it."""
        offset = self._block_offsets[self.rank]
        mine = self._block_sums[offset : offset + self._block_counts[self.rank]]
        kernels.norm.block_sums([(piece.grad, piece.norm_bounds) for piece in pieces], mine)
        self.comm.Allgatherv(
            self._in_place,
            [self._block_sums, self._block_counts, self._block_offsets, self._double],
        )
        return math.sqrt(reduce_block_sums(self._block_sums))

    def _offending(self, pieces: list[Piece]) -> list[str]:
        """The layers holding NaN or Inf on any rank (a layer cut by a slice once)."""
        every = self.comm.allgather(self.local.offending_layers(pieces))
        return list(dict.fromkeys(name for ranks_names in every for name in ranks_names))

    # -- saving and restoring (see fastoptim.distributed.checkpoint) -----------------------------
    def gather(self, local: np.ndarray, member: str) -> np.ndarray | None:
        """This rank's slice ``local`` of the stored buffer ``member`` (``'state.<key>'``,
        ``'scales.<key>'``, ``'small.<key>'``), gathered whole on rank 0 (None elsewhere)."""
        from mpi4py.util.dtlib import from_numpy_dtype

        cuts = self.buffer_cuts[buffer_kind(member)]
        counts = np.diff(cuts).tolist()
        mpi_type = from_numpy_dtype(local.dtype)  # the buffer's own dtype (codes)
        whole = np.empty(cuts[-1], dtype=local.dtype) if self.rank == 0 else None
        target = [whole, counts, cuts[:-1], mpi_type] if self.rank == 0 else None
        self.comm.Gatherv([local, mpi_type], target, root=0)
        return whole

    def whole_optimizer(self, states: dict[str, np.ndarray] | None) -> Optimizer:
        """A non-sharded optimizer with this one's settings, groups, step and a copy of the
        parameters (and ``states``, whole stored buffers by name, if given): for
        single-file checkpoints."""
        optimizer = self.optimizer
        params = FlatParams(self.layout, self.params.buffer.copy())
        groups = slice_groups(optimizer.groups, self.layout.names)  # all of them
        whole = _like(
            optimizer, params, optimizer.hyperparameters(), groups, self.t, optimizer.lr_as_set
        )
        stored = whole.stored_buffers()
        for member, buffer in (states or {}).items():
            stored[member][...] = buffer
        return whole

    def restore(
        self,
        params: np.ndarray,
        states: dict[str, np.ndarray],
        t: int,
        hyperparameters: dict[str, Any],
        groups: list[dict[str, Any]],
    ) -> None:
        """Take this rank's slice of saved ``params`` and ``states`` (stored buffers by name)
        with the saved step, settings and groups; checked on every rank before anything
        changes."""
        optimizer = self.optimizer

        def check() -> tuple[list[ResolvedGroup], Optimizer]:
            step = check_step(t, "the saved t", first=0)
            resolved = restored_groups(groups, optimizer.groups, step + 1)
            return resolved, self._make_local(hyperparameters, resolved, step)

        resolved, local = self.agree(check)
        optimizer.set_hyperparameters(**hyperparameters)  # checked above, by making ``local``
        optimizer.groups, optimizer.t = resolved, local.t
        stored = local.stored_buffers()
        for member, buffer in states.items():
            stored[member][...] = buffer
        self.local = local
        self.params.buffer[self.start : self.stop] = params
        self.allgather_params()


T = TypeVar("T")


def _like(
    optimizer: Optimizer,
    params: FlatParams,
    settings: dict,
    groups: list[Group],
    t: int,
    lr: Any = None,
    **overrides: Any,
) -> Optimizer:
    """An optimizer of ``optimizer``'s class over ``params`` with ``settings`` (and
    ``overrides``), ``groups``, step ``t`` and, if given, ``lr`` (a rate or a schedule)."""
    made = type(optimizer)(params, **{**settings, **overrides}, groups=groups)
    if lr is not None:
        made.lr = lr
    made.t = t
    return made


def _release_state(optimizer: Optimizer) -> None:
    """The wrapped optimizer's full-size state is no longer needed: the ranks hold it in
    slices. Its step now says what to use instead."""
    optimizer.release_state()

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError(
            "this optimizer was sharded: its state lives in slices on the ranks; "
            "step the ShardedOptimizer that fastoptim.distributed.shard returned"
        )

    optimizer.step = refuse  # type: ignore[method-assign]
