"""Move torch parameters and gradients into flat buffers that fastoptim kernels update.

Per dtype there is one parameter buffer and one gradient buffer. A *bucket* is the
parameters of one param group with one dtype: a contiguous, 64-byte aligned range of those
buffers, with its own fastoptim optimizer (hyper-parameters, state buffers, kernel). Each
torch parameter's ``.data`` becomes a view of its range, and its ``.grad`` a view of the
gradient buffer, so module code keeps working and backward accumulates in place.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from fastoptim.flat import ALIGNMENT_BYTES, FlatParams, Layout, aligned_empty
from fastoptim.optim import Optimizer
from fastoptim.torch.state_table import ExposedState

_GRAD = operator.attrgetter("grad")

DTYPES: dict[torch.dtype, np.dtype] = {
    torch.float32: np.dtype(np.float32),
    torch.float64: np.dtype(np.float64),
}


@dataclass
class Bucket:
    """The parameters of one param group with one dtype, and the fastoptim optimizer that
    updates them. ``names[i]`` is the layer name of ``params[i]`` in ``core.layout``."""

    group_index: int
    params: list[torch.nn.Parameter]
    names: list[str]
    core: Optimizer
    grads: FlatParams  # views of the dtype's gradient buffer, keyed like the layout
    grad_views: list[torch.Tensor]  # grads[names[i]] as the tensor p.grad should be
    data_views: list[torch.Tensor]  # core.params[names[i]] as the tensor p.data should be
    data_pointers: list[int]  # where each parameter's data is when it is in the buffer
    steps: np.ndarray  # float32 per parameter, as torch's state['step'] tensors view it
    step_views: list[torch.Tensor] = field(default_factory=list)
    # torch state values that are functions of the step count (NAdam's mu_product): float32
    # per parameter by key, and their 0-d views
    step_values: dict[str, np.ndarray] = field(default_factory=dict)
    step_value_views: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    options: dict = field(default_factory=dict)  # the group's settings the core has now
    exposed: bool = False  # every parameter has its torch state (views) in place
    # each parameter's torch state as the optimizer put it in ``state`` (None: none yet)
    exposed_states: list[ExposedState | None] = field(default_factory=list)
    uniform: bool = True  # every parameter has taken the same number of steps

    def count_steps(self, indices: list[int] | None = None) -> None:
        """Add one to the step count of ``indices`` (None: all)."""
        if indices is None:
            self.steps += 1
        else:
            self.steps[indices] += 1
            self.recount_uniform()

    def keep_step_values(self, key: str) -> None:
        """Hold a float32 value of ``key`` per parameter, with 0-d views (see
        ``step_values``)."""
        values = np.ones(len(self.params), dtype=np.float32)
        self.step_values[key] = values
        self.step_value_views[key] = [
            torch.from_numpy(values[i : i + 1]).view(()) for i in range(len(self.params))
        ]

    def recount_uniform(self) -> None:
        """Set ``uniform`` from the step counts (after they changed other than all alike)."""
        self.uniform = self.steps.size == 0 or bool(self.steps.min() == self.steps.max())

    def attached(self) -> bool:
        """True when every parameter has its gradient in the buffer and its data in the
        buffer: then one kernel call over the bucket is the whole update."""
        # map() keeps the per-parameter loop in C: this runs on every step
        return all(map(operator.is_, map(_GRAD, self.params), self.grad_views)) and (
            list(map(torch.Tensor.data_ptr, self.params)) == self.data_pointers
        )


def layer_names(groups: Sequence[dict]) -> list[list[str]]:
    """A layer name for every parameter: torch's ``param_names`` when the optimizer was
    given ``named_parameters()``, else ``param<i>`` by its index in the state dict."""
    names, index = [], 0
    for group in groups:
        given = group.get("param_names")
        names.append(
            list(given) if given else [f"param{index + i}" for i in range(len(group["params"]))]
        )
        index += len(group["params"])
    return names


def build_buckets(
    groups: Sequence[dict], make_core: Callable[[dict, FlatParams], tuple[Optimizer, dict]]
) -> list[Bucket]:
    """Lay out every parameter of ``groups`` into per-dtype buffers (bucket by bucket) and
    point the parameters' data and gradients at them, keeping their values."""
    names = layer_names(groups)
    keys = []  # (group index, dtype) in order of first appearance
    members: dict[tuple[int, torch.dtype], list[tuple[torch.nn.Parameter, str]]] = {}
    seen: set[int] = set()
    for index, (group, group_names) in enumerate(zip(groups, names, strict=True)):
        for param, name in zip(group["params"], group_names, strict=True):
            if id(param) in seen:  # given twice in a group (torch warned): held once
                continue
            seen.add(id(param))
            key = (index, param.dtype)
            if key not in members:
                keys.append(key)
                members[key] = []
            members[key].append((param, name))
    sizes: dict[torch.dtype, int] = {}
    starts = {}
    for key in keys:  # each bucket starts on an aligned element of its dtype's buffer
        dtype = key[1]
        per_line = ALIGNMENT_BYTES // torch.empty((), dtype=dtype).element_size()
        start = math.ceil(sizes.get(dtype, 0) / per_line) * per_line
        starts[key] = start
        sizes[dtype] = start + sum(p.numel() for p, _ in members[key])
    params_buffers = {dtype: aligned_empty(size, DTYPES[dtype]) for dtype, size in sizes.items()}
    grads_buffers = {dtype: aligned_empty(size, DTYPES[dtype]) for dtype, size in sizes.items()}
    for buffer in grads_buffers.values():
        buffer.fill(0)
    buckets = []
    for key in keys:
        index, dtype = key
        params = [p for p, _ in members[key]]
        bucket_names = [n for _, n in members[key]]
        layout = Layout(bucket_names, [tuple(p.shape) for p in params], DTYPES[dtype])
        start, stop = starts[key], starts[key] + layout.size
        flat = FlatParams(layout, params_buffers[dtype][start:stop])
        grads = FlatParams(layout, grads_buffers[dtype][start:stop])
        grad_views, data_views = [], []
        for param, name in zip(params, bucket_names, strict=True):
            flat[name][...] = param.detach().numpy()
            # autograd needs a view that is not a leaf of the numpy memory: from_numpy gives it
            grad_view = torch.from_numpy(grads[name])
            if param.grad is not None:
                grad_view.copy_(param.grad)
            grad_views.append(grad_view)
            data_views.append(torch.from_numpy(flat[name]))
        for param, data_view, grad_view in zip(params, data_views, grad_views, strict=True):
            param.data = data_view
            if param.grad is not None:
                param.grad = grad_view
        core, options = make_core(groups[index], flat)
        steps = np.zeros(len(params), dtype=np.float32)
        buckets.append(
            Bucket(
                group_index=index,
                params=params,
                names=bucket_names,
                core=core,
                grads=grads,
                grad_views=grad_views,
                data_views=data_views,
                data_pointers=[p.data_ptr() for p in params],
                steps=steps,
                step_views=[
                    torch.from_numpy(steps[i : i + 1]).view(()) for i in range(len(params))
                ],
                options=options,
                exposed_states=[None] * len(params),
            )
        )
    return buckets


def check_parameters(groups: Sequence[dict]) -> None:
    """Refuse what the flat buffers cannot hold, before anything moves. (torch itself
    refuses a parameter in two groups, and warns of one given twice in a group.)"""
    for index, group in enumerate(groups):
        for position, param in enumerate(group["params"]):
            label = f"param_groups[{index}]['params'][{position}]"
            if param.device.type != "cpu":
                raise ValueError(
                    f"{label} is on {param.device}; fastoptim.torch updates CPU parameters only"
                )
            if param.dtype not in DTYPES:
                raise TypeError(
                    f"{label} is {param.dtype}; fastoptim.torch keeps float32 or float64 "
                    "parameters (for bfloat16 training keep float32 master weights and use "
                    "torch.autocast)"
                )
            if param.is_sparse or param.layout != torch.strided:
                raise TypeError(f"{label} is not a dense tensor; fastoptim.torch needs dense ones")
