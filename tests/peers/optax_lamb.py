"""Writes tests/data/optax_lamb.npz: optax.lamb's own numbers, which test_lamb.py checks
fastoptim.LAMB against without installing jax.

Run in an environment with optax (``pip install optax``): ``python tests/peers/optax_lamb.py``.
Three layers (one all zeros: trust ratio 1), eight steps of seeded gradients, two option
sets, in float64 (jax_enable_x64) and float32; the file holds the start, the gradients and
optax's parameters after every step.
"""

from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

SHAPES = {"W": (7, 5), "b": (5,), "zero": (3,)}
STEPS = 8
OPTIONS = {
    "default": {"learning_rate": 1e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-6, "weight_decay": 0.0},
    "decayed": {"learning_rate": 0.05, "b1": 0.8, "b2": 0.99, "eps": 1e-4, "weight_decay": 0.1},
}


def main() -> None:
    rng = np.random.default_rng(20)
    out = {}
    for dtype in ("float64", "float32"):
        start = {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}
        start["zero"][:] = 0
        grads = [{k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}
                 for _ in range(STEPS)]  # fmt: skip
        for name in SHAPES:
            out[f"{dtype}/start/{name}"] = start[name]
            for t, g in enumerate(grads, 1):
                out[f"{dtype}/grad/{t}/{name}"] = g[name]
        for option, kwargs in OPTIONS.items():
            opt = optax.lamb(**kwargs)
            params = {k: jnp.asarray(v) for k, v in start.items()}
            state = opt.init(params)
            for t, g in enumerate(grads, 1):
                updates, state = opt.update({k: jnp.asarray(v) for k, v in g.items()}, state,
                                            params)  # fmt: skip
                params = optax.apply_updates(params, updates)
                for name in SHAPES:
                    out[f"{dtype}/{option}/{t}/{name}"] = np.asarray(params[name])
    out["optax_version"] = np.array(optax.__version__)
    target = Path(__file__).resolve().parent.parent / "data" / "optax_lamb.npz"
    np.savez_compressed(target, **out)
    print(f"wrote {target} ({len(out)} arrays, optax {optax.__version__})")


if __name__ == "__main__":
    main()
