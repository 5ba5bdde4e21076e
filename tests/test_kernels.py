"""Kernel contract: one signature per dtype, same bits for any thread count and for the
serial twin, NaN and Inf as in the reference."""

from __future__ import annotations

import copy

import numba
import numpy as np
import pytest
from registry import (
    ALGORITHMS,
    COURSE_ALGORITHMS,
    ENTRY_POINTS,
    CourseDicts,
    Reference,
    flat_entry_point,
)

import fastoptim
from fastoptim import config

ODD_SIZE = 1_000_003  # prime: no thread gets an even share


def run_steps(algorithm, dtype, steps=5, size=ODD_SIZE):
    rng = np.random.default_rng(11)
    initial = {"W1": rng.standard_normal(size).astype(dtype)}
    run = ENTRY_POINTS[flat_entry_point(algorithm)](
        algorithm, initial, algorithm.hyperparameter_sets[0]
    )
    for t in range(1, steps + 1):
        run.step({"dW1": rng.standard_normal(size).astype(dtype)}, t)
    params, states = run.current()
    return [params["W1"].copy(), *(s["dW1"].copy() for s in states)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.name)
def test_one_and_two_threads_give_the_same_bits(algorithm, dtype):
    assert ODD_SIZE >= config.SERIAL_BELOW, "this size must take the parallel kernel"
    with fastoptim.num_threads(1):
        one = run_steps(algorithm, dtype)
    with fastoptim.num_threads(min(2, numba.config.NUMBA_NUM_THREADS)):
        two = run_steps(algorithm, dtype)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.name)
def test_serial_twin_gives_the_same_bits_as_the_parallel_kernel(algorithm, dtype):
    rng = np.random.default_rng(3)
    n = 10_007
    arrays = [rng.standard_normal(n).astype(dtype) for _ in range(2 + algorithm.kernel.n_state)]
    arrays[2:] = [np.abs(a) for a in arrays[2:]]  # second moments are never negative
    scalars = [dtype(x) for x in np.linspace(0.1, 0.9, algorithm.kernel.n_scalars)]
    serial = [a.copy() for a in arrays]
    parallel = [a.copy() for a in arrays]
    algorithm.kernel.variant(np.dtype(dtype), parallel=False)(*serial, *scalars)
    algorithm.kernel.variant(np.dtype(dtype), parallel=True)(*parallel, *scalars)
    for a, b in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(a, b)


def test_every_kernel_has_exactly_one_signature_per_dtype_and_variant():
    """Python floats, ints, numpy scalars, read-only and strided grads never recompile."""
    for dtype in (np.float32, np.float64):
        rng = np.random.default_rng(0)
        for size in (5, 50_000):  # serial twin and parallel kernel
            params = {
                "W1": rng.standard_normal((size,)).astype(dtype),
                "b1": np.ones((1, 1), dtype),
            }
            grads = {"dW1": np.ones(size, dtype), "db1": np.ones((1, 1), dtype)}
            grads["db1"].flags.writeable = False
            for lr in (0.01, np.float64(0.01), np.float32(0.01), 1):
                fastoptim.update_parameters_with_gd(params, grads, lr)
                v = fastoptim.initialize_velocity(params)
                fastoptim.update_parameters_with_momentum(params, grads, v, 0.9, lr)
                v, s = fastoptim.initialize_adam(params)
                fastoptim.update_parameters_with_adam(params, grads, v, s, 1, lr)
                opt = fastoptim.Adam(
                    fastoptim.flatten(params), lr=lr, betas=[0.9, np.float32(0.99)]
                )
                opt.step({"W1": grads["dW1"][::-1].copy()[::-1], "b1": grads["db1"]})
                opt.step(opt.params.zeros_like())
            # every registered algorithm's kernel, in both variants, whatever ran before
            for algorithm in ALGORITHMS:
                if algorithm.make_optimizer is None:
                    continue
                hp = algorithm.hyperparameter_sets[0]
                opt = algorithm.make_optimizer({k: v.copy() for k, v in params.items()}, hp)
                opt.step({"W1": grads["dW1"], "b1": grads["db1"]})  # read-only grad
                opt.step(opt.params.zeros_like())
    for algorithm in ALGORITHMS:
        variants = algorithm.kernel.compiled_variants()
        assert {(dt, par) for dt, par in variants} >= {
            (np.dtype(np.float32), False),
            (np.dtype(np.float32), True),
            (np.dtype(np.float64), False),
            (np.dtype(np.float64), True),
        }
        for (dt, parallel), dispatcher in variants.items():
            assert len(dispatcher.signatures) == 1, (algorithm.name, dt, parallel)
            assert dispatcher.signatures[0][0].dtype == numba.from_dtype(dt)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("algorithm", COURSE_ALGORITHMS, ids=lambda a: a.name)
@pytest.mark.parametrize("size", [7, ODD_SIZE], ids=["serial", "parallel"])
def test_nan_and_inf_propagate_as_in_the_reference(algorithm, dtype, size):
    rng = np.random.default_rng(5)
    initial = {"W1": rng.standard_normal(size).astype(dtype)}
    hp = algorithm.hyperparameter_sets[0]
    fast = CourseDicts(algorithm, initial, hp)
    oracle = Reference(algorithm, {k: v.copy() for k, v in initial.items()}, hp)
    oracle.parameters = {k: v.astype(dtype) for k, v in oracle.parameters.items()}
    oracle.states = tuple({k: v.astype(dtype) for k, v in s.items()} for s in oracle.states)
    for t in range(1, 4):
        grad = rng.standard_normal(size).astype(dtype)
        grad[[0, 3, 5]] = [np.nan, np.inf, -np.inf]
        fast.step({"dW1": grad}, t)
        with np.errstate(invalid="ignore"):  # inf / inf in the reference, as expected
            oracle.step({"dW1": grad}, t)
        oracle.parameters = {k: v.astype(dtype) for k, v in oracle.parameters.items()}
        got = fast.current()[0]["W1"]
        want = oracle.current()[0]["W1"]
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
        np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
        assert np.isnan(got[0]) and not np.isnan(got[1])


def test_threads_setting_is_checked_and_restored():
    start = fastoptim.get_num_threads()
    with fastoptim.num_threads(1):
        assert fastoptim.get_num_threads() == 1
    assert fastoptim.get_num_threads() == start
    with pytest.raises(ValueError, match="n must be a whole number from 1 to"):
        fastoptim.set_num_threads(0)
    with pytest.raises(ValueError, match="NUMBA_NUM_THREADS"):
        fastoptim.set_num_threads(numba.config.NUMBA_NUM_THREADS + 1)
    assert fastoptim.get_num_threads() == start


def test_a_deep_copied_optimizer_continues_exactly_like_the_original():
    a = fastoptim.Adam({"W1": np.linspace(-1, 1, 101)}, lr=0.01)
    a.step({"dW1": np.sin(np.arange(101.0))})
    b = copy.deepcopy(a)
    assert not np.shares_memory(a.params.buffer, b.params.buffer)
    for t in range(1, 4):
        g = np.cos(np.arange(101) * t)
        a.step(g)
        b.step(g)
    np.testing.assert_array_equal(a.params.buffer, b.params.buffer)
    for key in a.state:
        np.testing.assert_array_equal(a.state[key].buffer, b.state[key].buffer)


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.name)
def test_python_float_scalars_round_like_numpy_float32(algorithm):
    """run() passes Python floats to float32 kernels: Numba's conversion must give the same
    bits as casting them with np.float32 first (values chosen to need rounding)."""
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal(1001).astype(np.float32) for _ in range(2)]
    arrays += [np.abs(rng.standard_normal(1001)).astype(np.float32)] * algorithm.kernel.n_state
    arrays = [a.copy() for a in arrays]
    values = [1 / 3, 0.1, 0.7, 1 / 7, 2 / 3, 0.9, 1e-8, 0.3, 0.6, 1 / 9, 1 / 11, 1 / 13][
        : algorithm.kernel.n_scalars
    ]
    assert all(float(np.float32(v)) != v for v in values)  # each one is rounded
    kernel = algorithm.kernel.variant(np.dtype(np.float32), parallel=False)
    from_python = [a.copy() for a in arrays]
    from_numpy = [a.copy() for a in arrays]
    kernel(*from_python, *values)
    kernel(*from_numpy, *(np.float32(v) for v in values))
    for a, b in zip(from_python, from_numpy, strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(kernel.signatures) == 1


def test_sgd_without_momentum_does_not_read_its_buffer():
    """Without momentum torch keeps no buffer; fastoptim's is never read (a NaN left in it
    would otherwise reach the weights through 0 * NaN), so the step moves 12 bytes per
    float32 element, not 16."""
    params = fastoptim.flatten({"w": np.ones(50_000, np.float32)})
    opt = fastoptim.SGD(params, lr=0.5, weight_decay=0.1, nonfinite="ignore")
    opt.state["momentum_buffer"].buffer[:] = np.nan
    grads = params.zeros_like(prefix="d")
    grads.buffer[:] = 1.0
    opt.step(grads)
    np.testing.assert_array_equal(params["w"], np.float32(1.0) - np.float32(0.5) * np.float32(1.1))


@pytest.mark.parametrize(
    "algorithm", [a for a in ALGORITHMS if a.make_optimizer], ids=lambda a: a.name
)
def test_each_scalar_function_returns_its_kernels_full_record(algorithm):
    """The declaration's scalar function gives the kernel's own record, every field set:
    the records are built from plain tuples (new_record), which checks no length."""
    for hp in algorithm.hyperparameter_sets:
        opt = algorithm.make_optimizer({"w": np.ones(3)}, hp)
        for t in (1, 2, 50):
            (record,) = opt.scalar_table(t, opt.learning_rates(t), 0.5)
            assert type(record) is opt.kernel.scalars
            assert len(record) == opt.kernel.n_scalars
            assert all(isinstance(value, float) for value in record), record
