"""Which torch releases fastoptim.torch supports, and the check made at construction.

The adapter relies on torch.optim internals, not only on its public API:

- the param-group keys of each class (``decoupled_weight_decay`` on Adam, ``param_names``
  with ``named_parameters()``, ``foreach``/``fused``/``capturable``/``differentiable``);
- ``Optimizer.__getstate__``/``__setstate__`` (torch's ``load_state_dict`` goes through
  ``__setstate__``) and the state_dict layout (per-parameter dicts, ``step`` tensors);
- GradScaler's protocol for fused optimizers: ``_step_supports_amp_scaling`` set by the
  fused classes, and the ``grad_scale`` and ``found_inf`` attributes set around ``step``.

These are tested (torch's own optim_db, the client-code tests) on the releases in
``SUPPORTED``; any other release is refused at construction with a clear error rather than
risking other numbers.
"""

from __future__ import annotations

import re

import torch

SUPPORTED = ((2, 13), (2, 15))  # torch >= 2.13, < 2.15: the extra's range in pyproject.toml
SUPPORTED_TEXT = "torch>={}.{},<{}.{}".format(*SUPPORTED[0], *SUPPORTED[1])


def release(version: str) -> tuple[int, int]:
    """(major, minor) of a torch version string such as '2.13.0+cpu'."""
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None:
        raise RuntimeError(f"cannot read the torch version {version!r}")
    return int(match[1]), int(match[2])


def check_torch_version(version: str | None = None) -> None:
    """Raise RuntimeError unless this torch (or ``version``) is a supported release."""
    version = str(torch.__version__) if version is None else version
    low, high = SUPPORTED
    if not low <= release(version) < high:
        raise RuntimeError(
            f"fastoptim.torch supports {SUPPORTED_TEXT}; this is torch {version}. It relies on "
            "torch.optim internals (param-group keys, __setstate__, GradScaler's fused-step "
            "protocol) that are tested on those releases only: install a supported torch "
            "(pip install 'fastoptim[torch]'), or use torch.optim."
        )
