"""Clipping by global norm in plain numpy, as ``torch.nn.utils.clip_grad_norm_`` does it."""

import numpy as np


def clip_by_global_norm(grads, max_norm):
    """``torch.nn.utils.clip_grad_norm_``: scale every gradient by
    ``min(1, max_norm / (norm + 1e-6))``, ``norm`` the 2-norm of all of them together."""
    norm = np.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads.values()))
    scale = min(1.0, max_norm / (norm + 1e-6))
    return {key: g * scale for key, g in grads.items()}
