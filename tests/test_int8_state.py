"""state_dtype='int8': every algorithm with state, through the flat and per-layer paths,
steps exactly as its float32 kernel over the decoded state followed by blockwise
quantization (kernels/int8.py's numpy twin), but for Adam's clamp, which bites only where
the decoded moments exceed what exact ones can reach; layers below 4096 elements keep
float32 state; the same bits for any thread count and after a round trip; the step bound
holds where a second moment quantized to zero; memory about 2.03 bytes per element."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from registry import ALGORITHMS
from test_state_dtype import assert_round_trips

import fastoptim
from fastoptim.kernels import int8
from fastoptim.optim import blockwise
from fastoptim.optim.adam import BOUND_SLACK, moment_ratio_bound

# two quantized layers (one ending in a short block) and small ones, incl. a 0-d layer
SHAPES = {"W1": (41, 290), "b1": (41, 1), "scale": (), "W2": (3, 1367), "b2": (3,)}
# centered RMSprop refuses int8 state (see its test)
STATEFUL = [a for a in ALGORITHMS if a.stores_state_dtype and "grad_avg" not in a.state_names]


def _params(seed: int, shapes=SHAPES) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: np.asarray(rng.standard_normal(s), np.float32) for k, s in shapes.items()}


def _grads(rng: np.random.Generator, shapes=SHAPES) -> dict[str, np.ndarray]:
    return {  # heavy tails and scales that differ between layers
        "d" + k: np.asarray(rng.standard_t(3, s) * 10 ** rng.uniform(-3, 1), np.float32)
        for k, s in shapes.items()
    }


def _twin(opt: fastoptim.Optimizer, params, state_dtype: str, **options):
    return type(opt)(params, **{**opt.hyperparameters(), "state_dtype": state_dtype, **options})


def _pair(algorithm, hp, shapes=SHAPES, block_size=None):
    float_opt = algorithm.make_optimizer(_params(0, shapes), hp)
    return float_opt, _twin(float_opt, _params(0, shapes), "int8", block_size=block_size)


def _largest_clamped_step(record, bound: float) -> float:
    """The largest step the int8 clamp allows, from the step's scalar record: lr R_t for
    Adam; NAdam adds its gradient term (|g| <= sqrt(v / (1 - beta2)) as v holds
    (1 - beta2) g**2); Adamax's step is clr |m| / u."""
    kind = type(record).__name__
    if kind == "AdamScalars":
        return record.step_size * bound / record.inv_bias_correction2_sqrt
    if kind == "NAdamScalars":
        gradient_term = record.grad_coefficient / math.sqrt(record.omb2)
        return (gradient_term + record.avg_coefficient * bound) / record.inv_bias_correction2_sqrt
    if kind == "RAdamScalars":
        return record.step_size * bound
    if kind == "AdamaxScalars":
        return record.clr * bound
    raise AssertionError(f"no step bound known for {kind}")


def _clamped(opt, float_opt, t) -> tuple[np.ndarray, float]:
    """Where the int8 clamp bites at step ``t`` (|m| > m_bound times the denominator's
    state, sqrt(v) or Adamax's u, for the new states: the float32 twin's, from the decoded
    ones) as a flat mask, and the largest step it allows; nowhere for other algorithms
    (and for RAdam's unrectified steps, which do not divide)."""
    record = opt.scalar_table(t, opt.learning_rates(t))[0]
    bound = getattr(record, "m_bound", math.inf)
    if bound == math.inf or getattr(record, "rectified", 1.0) == 0.0:
        return np.zeros(opt.layout.size, bool), math.inf
    if "exp_inf" in opt.state:
        limit = np.float32(bound) * float_opt.state["exp_inf"].buffer
    else:
        v = float_opt.state["max_exp_avg_sq" if "max_exp_avg_sq" in opt.state else "exp_avg_sq"]
        limit = np.float32(bound) * np.sqrt(v.buffer)
    mask = np.abs(float_opt.state["exp_avg"].buffer) > limit
    return mask, _largest_clamped_step(record, bound)


@pytest.mark.parametrize(
    ("grads_as", "block_size"), [("flat", None), ("dict", None), ("flat", 64), ("dict", 4096)]
)
@pytest.mark.parametrize("algorithm", STATEFUL, ids=lambda a: a.name)
def test_an_int8_step_is_the_float32_step_of_the_decoded_state_quantized(
    algorithm, grads_as, block_size
):
    for hp in algorithm.hyperparameter_sets:
        float_opt, opt = _pair(algorithm, hp, block_size=block_size)
        assert opt.int8 is not None and opt.int8.quantized == {"W1", "W2"}
        assert opt.int8.block == (block_size or 256) and opt.block_size == block_size
        flat = opt.params.zeros_like(prefix="d")
        rng = np.random.default_rng(1)
        for t in range(1, 5):
            for name in opt.state_names:  # the float32 twin starts from the decoded state
                for layer, values in opt.state_values(name).items():
                    float_opt.state[name][layer][...] = values
            np.copyto(float_opt.params.buffer, opt.params.buffer)
            grads = _grads(rng)
            for key, value in grads.items():
                flat[key][...] = value
            before = opt.params.buffer.copy()
            float_opt.step(flat if grads_as == "flat" else grads)
            opt.step(flat if grads_as == "flat" else grads)
            assert opt.t == t
            clamped, largest_step = _clamped(opt, float_opt, t)
            np.testing.assert_array_equal(
                opt.params.buffer[~clamped], float_opt.params.buffer[~clamped]
            )
            if clamped.any():  # there the step is lr R_t at most (after AdamW's decay)
                decay = getattr(opt.scalar_table(t, opt.learning_rates(t))[0], "decay", 1.0)
                moved = np.abs(opt.params.buffer - np.float32(decay) * before)[clamped]
                assert moved.max() <= largest_step * (1 + 1e-5) + 1e-6 * np.abs(before).max()
            for name in opt.state_names:
                unsigned = name in opt.int8.unsigned
                for layer in opt.layout.names:
                    expected = float_opt.state[name][layer]
                    if layer not in opt.int8.quantized:  # small: float32, as the twin
                        np.testing.assert_array_equal(opt.int8.small[name][layer], expected)
                        continue
                    codes, scales = blockwise.layer_codes(expected, unsigned, opt.int8.block)
                    np.testing.assert_array_equal(opt.state[name][layer], codes, err_msg=name)
                    span = opt.int8.block_span[layer]
                    np.testing.assert_array_equal(opt.int8.scales[name][span], scales)


def test_centered_rmsprop_refuses_int8_state_and_changes_nothing():
    """Its variance, square_avg - grad_avg**2, is a difference of two 8-bit averages: it
    came out negative in this file's round-trip test (NaN parameters after 3 steps)."""
    params = _params(0)
    entries = dict(params)
    with pytest.raises(ValueError, match=r"centered=True does not work with state_dtype='int8'"):
        fastoptim.RMSprop(params, centered=True, state_dtype="int8")
    assert all(params[k] is entries[k] for k in params)
    assert any("grad_avg" in a.state_names for a in ALGORITHMS)  # the ones left out above


def test_signed_and_unsigned_states_get_their_codes():
    adam = fastoptim.Adam(_params(0), amsgrad=True, state_dtype="int8")
    assert adam.state["exp_avg"].buffer.dtype == np.int8
    assert adam.state["exp_avg_sq"].buffer.dtype == np.uint8
    assert adam.state["max_exp_avg_sq"].buffer.dtype == np.uint8
    rmsprop = fastoptim.RMSprop(_params(0), momentum=0.9, state_dtype="int8")
    assert rmsprop.int8.unsigned == {"square_avg"}
    assert rmsprop.state["momentum_buffer"].buffer.dtype == np.int8


# the same bits for one and two threads: test_state_dtype.py, for both low-precision dtypes


@pytest.mark.parametrize("algorithm", STATEFUL, ids=lambda a: a.name)
def test_int8_state_round_trips_through_state_dict_pickle_and_save(algorithm, tmp_path):
    _, opt = _pair(algorithm, algorithm.hyperparameter_sets[0])
    rng = np.random.default_rng(4)
    for _ in range(3):
        opt.step(_grads(rng))
    saved = opt.state_dict()
    assert saved["hyperparameters"]["state_dtype"] == "int8"
    for name in opt.state_names:  # as stored: codes and scales, float32 for small layers
        code = np.uint8 if name in opt.int8.unsigned else np.int8
        assert saved["state"][name]["W1"].dtype == code
        assert saved["state"][name]["b1"].dtype == np.float32
        assert sorted(saved["scales"][name]) == ["W1", "W2"]
        assert saved["scales"][name]["W2"].shape == (math.ceil(4101 / 256),)
    assert_round_trips(opt, _grads(rng), tmp_path)


def test_int8_checkpoints_load_into_other_state_dtypes_only_by_an_explicit_conversion():
    rng = np.random.default_rng(0)
    adam = fastoptim.Adam(_params(0), state_dtype="int8")
    float_adam = fastoptim.Adam(_params(0))
    grads = _grads(rng)
    adam.step(grads)
    float_adam.step(grads)
    before = adam.state_dict()
    for target, saved in ((adam, float_adam.state_dict()), (float_adam, adam.state_dict())):
        with pytest.raises(ValueError, match=r"state_dtype.*convert_state_dtype"):
            target.load_state_dict(saved)
    after = adam.state_dict()
    assert all(
        np.array_equal(before["state"][k][n], after["state"][k][n]) for k in after["state"]
        for n in after["state"][k]
    )  # fmt: skip
    # float32 -> int8 quantizes once; int8 -> float32 decodes exactly
    adam.load_state_dict(fastoptim.convert_state_dtype(float_adam.state_dict(), "int8"))
    for name in adam.state_names:
        unsigned = name in adam.int8.unsigned
        codes, scales = blockwise.layer_codes(float_adam.state[name]["W1"], unsigned)
        np.testing.assert_array_equal(adam.state[name]["W1"], codes)
        np.testing.assert_array_equal(adam.int8.scales[name][adam.int8.block_span["W1"]], scales)
        np.testing.assert_array_equal(adam.int8.small[name]["b1"], float_adam.state[name]["b1"])
    float_adam.load_state_dict(fastoptim.convert_state_dtype(adam.state_dict(), "float32"))
    for name in adam.state_names:
        for layer, values in adam.state_values(name).items():
            np.testing.assert_array_equal(float_adam.state[name][layer], values)
    bfloat16 = fastoptim.Adam(_params(0), state_dtype="bfloat16")
    bfloat16.load_state_dict(fastoptim.convert_state_dtype(adam.state_dict(), "bfloat16"))


def test_a_block_size_is_kept_by_checkpoints_and_changes_only_by_an_explicit_conversion(
    tmp_path,
):
    rng = np.random.default_rng(0)
    coarse = fastoptim.Adam(_params(0), state_dtype="int8", block_size=1024)
    coarse.step(_grads(rng))
    saved = coarse.state_dict()
    assert saved["hyperparameters"]["block_size"] == 1024
    assert saved["scales"]["exp_avg"]["W1"].shape == (math.ceil(41 * 290 / 1024),)
    fine = fastoptim.Adam(_params(0), state_dtype="int8")
    before = [b.copy() for b in fine.int8.buffers()]
    with pytest.raises(ValueError, match=r"blocks of 1024.*block_size is 256.*convert_state_dtype"):
        fine.load_state_dict(saved)
    fastoptim.save(tmp_path / "coarse.npz", coarse)
    with pytest.raises(fastoptim.CheckpointError, match=r"blocks of 1024"):
        fastoptim.load(tmp_path / "coarse.npz", fine)
    assert all(np.array_equal(a, b) for a, b in zip(before, fine.int8.buffers(), strict=True))
    assert fine.t == 0
    fine.load_state_dict(fastoptim.convert_state_dtype(saved, "int8"))  # requantized once
    for name in fine.state_names:
        for layer, values in coarse.state_values(name).items():
            unsigned = name in fine.int8.unsigned
            expected = values
            if layer in fine.int8.quantized:
                expected = blockwise.layer_values(
                    *blockwise.layer_codes(values, unsigned), unsigned
                )
            np.testing.assert_array_equal(fine.state_values(name)[layer], expected)
    with pytest.raises(ValueError, match=r"block_size=512 applies to state_dtype='int8' only"):
        fastoptim.convert_state_dtype(saved, "float32", block_size=512)
    with pytest.raises(ValueError, match=r"block_size must be a power of two"):
        fastoptim.convert_state_dtype(saved, "int8", block_size=300)
    resumed = fastoptim.Adam(_params(9), state_dtype="int8", block_size=1024)
    fastoptim.load(tmp_path / "coarse.npz", resumed)
    grads = _grads(rng)
    coarse.step(grads)
    resumed.step(grads)
    assert np.array_equal(resumed.params.buffer, coarse.params.buffer)
    theirs = coarse.stored_buffers()
    assert all(np.array_equal(a, theirs[k]) for k, a in resumed.stored_buffers().items())


def test_a_saved_int8_state_with_bad_scales_is_refused_and_nothing_changes():
    adam = fastoptim.Adam(_params(0), state_dtype="int8")
    adam.step(_grads(np.random.default_rng(0)))
    saved = adam.state_dict()
    before = [b.copy() for b in adam.int8.buffers()]
    broken = copy.deepcopy(saved)
    broken["scales"]["exp_avg"]["W1"][3] = np.nan
    with pytest.raises(ValueError, match=r"scales.*'exp_avg'.*'W1'.*NaN"):
        adam.load_state_dict(broken)
    del broken["scales"]["exp_avg_sq"]
    with pytest.raises(KeyError, match=r"state_dict\['scales'\] must hold"):
        adam.load_state_dict(broken)
    short = copy.deepcopy(saved)
    short["scales"]["exp_avg"]["W2"] = short["scales"]["exp_avg"]["W2"][:-1]
    with pytest.raises(ValueError, match=r"scales.*'W2'.*expected float32 of shape \(17,\)"):
        adam.load_state_dict(short)
    assert all(np.array_equal(a, b) for a, b in zip(before, adam.int8.buffers(), strict=True))
    assert adam.t == 1


def test_state_bytes_per_parameter_with_int8():
    n = 256 * 4096
    adam = fastoptim.Adam({"w": np.zeros(n, np.float32)}, state_dtype="int8")
    assert adam.state_nbytes == 2 * (n + 4 * n // 256)  # 2.03 bytes per parameter
    small = {"b": np.zeros(100, np.float32)}
    assert fastoptim.Adam(small, state_dtype="int8").state_nbytes == 2 * (100 + 4 * 100)
    for block in (64, 4096):  # a scale per block: 2.125 and 2.002 bytes per parameter
        adam = fastoptim.Adam({"w": np.zeros(n, np.float32)}, state_dtype="int8", block_size=block)
        assert adam.state_nbytes == 2 * (n + 4 * n // block)


def test_the_step_is_bounded_where_a_second_moment_quantized_to_zero():
    """A block whose second moments span more than 255**2 quantizes its small ones to 0.
    Where the first moment does not vanish with them, the float32 rule would divide by
    eps; int8 Adam clamps |m| to m_bound sqrt(v), so no element moves more than lr R_t."""
    n, lr, t = 4096, 1e-3, 10
    float_adam = fastoptim.Adam({"w": np.zeros(n, np.float32)}, lr=lr)
    float_adam.t = t - 1
    m = np.full(n, 1e-2, np.float32)
    v = np.full(n, 1e-6, np.float32)
    v[::256] = 1e4  # one large second moment per block: the others code to 0
    float_adam.state["exp_avg"].buffer[...] = m
    float_adam.state["exp_avg_sq"].buffer[...] = v
    adam = fastoptim.Adam({"w": np.zeros(n, np.float32)}, lr=lr, state_dtype="int8")
    adam.load_state_dict(fastoptim.convert_state_dtype(float_adam.state_dict(), "int8"))
    decoded_v = adam.state_values("exp_avg_sq")["w"]
    assert (decoded_v == 0).sum() == n - n // 256
    assert (adam.state_values("exp_avg")["w"] != 0).all()
    grads = {"w": np.zeros(n, np.float32)}  # no new information: v stays 0 there
    # what the float32 rule does with that decoded state
    float_adam.state["exp_avg_sq"].buffer[...] = decoded_v
    float_adam.state["exp_avg"].buffer[...] = adam.state_values("exp_avg")["w"]
    float_adam.step(grads)
    adam.step(grads)
    beta1, beta2 = adam.betas
    ratio = moment_ratio_bound(beta1, beta2, t) * math.sqrt(1 - beta2**t) / (1 - beta1**t)
    largest = float(np.abs(adam.params["w"]).max())
    assert largest <= lr * ratio * BOUND_SLACK * (1 + 1e-6)
    assert float(np.abs(float_adam.params["w"]).max()) > 1e4 * lr * ratio  # unbounded


def test_the_ratio_bound_is_what_exact_moments_reach():
    """Cauchy-Schwarz is tight: gradients g_{t-j} proportional to (beta1/beta2)**j reach
    the bound; random ones stay below it."""
    beta1, beta2, t = 0.9, 0.999, 30
    bound = moment_ratio_bound(beta1, beta2, t)
    for grads in (
        (beta1 / beta2) ** np.arange(t)[::-1],
        np.random.default_rng(0).standard_normal(t),
    ):
        m = v = 0.0
        for g in grads:
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
        assert abs(m) / math.sqrt(v) <= bound * (1 + 1e-12)
    assert abs(m) / math.sqrt(v) < bound / 2  # the random sequence
    assert moment_ratio_bound(beta1, beta2, 1) == pytest.approx((1 - beta1) / math.sqrt(1 - beta2))
    assert moment_ratio_bound(0.9, 0.0, 5) == math.inf


def test_a_non_finite_gradient_under_skip_changes_no_int8_state():
    adam = fastoptim.Adam(_params(0), state_dtype="int8")
    adam.step(_grads(np.random.default_rng(0)))
    before = [adam.params.buffer.copy(), *(b.copy() for b in adam.int8.buffers())]
    grads = _grads(np.random.default_rng(1))
    grads["dW1"][2, 3] = np.nan
    with pytest.warns(RuntimeWarning, match="step skipped"):
        adam.step(grads)  # the default policy skips the step
    after = [adam.params.buffer, *adam.int8.buffers()]
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def test_a_nan_reaching_int8_state_makes_its_block_nan_not_a_number():
    adam = fastoptim.Adam({"w": np.zeros(4096, np.float32)}, state_dtype="int8", nonfinite="ignore")
    grads = {"w": np.ones(4096, np.float32)}
    grads["w"][300] = np.nan
    adam.step(grads)
    values = adam.state_values("exp_avg")["w"]
    assert np.isnan(values[256:512]).all()  # the block of element 300
    assert np.isfinite(values[:256]).all() and np.isfinite(values[512:]).all()


def test_blocks_follow_layers():
    assert int8.block_bounds([600, 256, 5], 256).tolist() == [0, 256, 512, 600, 856, 861]
    assert blockwise.quantizes(4096) and not blockwise.quantizes(4095)


def test_the_int8_loop_with_prefetch_hints_gives_the_same_bits(monkeypatch):
    """The int8 loop asks for the data ahead of each block except on AMD's Zen
    cores (kernels/loop_source.py): both sources are compiled here, wherever the tests run, and
    the one with hints must write exactly what the one without writes, hints past the end
    of the buffers included."""
    from fastoptim.kernels import adam, loop_source
    from fastoptim.kernels.elementwise import ElementwiseUpdate

    rng = np.random.default_rng(0)
    n = 40_000  # 157 blocks of 256
    bounds = int8.block_bounds([n], 256)
    m_codes, m_scales = int8.quantize(rng.standard_normal(n, dtype=np.float32), True, bounds)
    v_codes, v_scales = int8.quantize(rng.random(n, dtype=np.float32), False, bounds)
    param = rng.standard_normal(n, dtype=np.float32)
    grad = rng.standard_normal(n, dtype=np.float32)
    scalars = adam.AdamScalars(1.0, 0.0, 1.0, 0.9, 0.1, 0.999, 0.001, 1e-3, 10.0, 1e-8, 50.0)
    written = []
    for span in (0, 256):
        monkeypatch.setattr(loop_source, "PREFETCH_SPAN", span)
        update = ElementwiseUpdate(
            adam.adam, n_state=2, scalars=adam.AdamScalars, switches=adam.SWITCHES,
            unsigned={1}, int8_only=adam.INT8_ONLY,
        )  # fmt: skip
        loop = update.stored_as("int8")
        assert ("prefetch(param, j)" in loop.make_body.source) == (span > 0)
        arrays = [x.copy() for x in (param, m_codes, v_codes, m_scales, v_scales)]
        p, mc, vc, ms, vs = arrays
        loop.variant(np.dtype(np.float32), False)(
            p, grad, mc, vc, ms, vs, bounds, 256, *map(np.float32, scalars)
        )
        assert not np.array_equal(p, param) and not np.array_equal(mc, m_codes)
        written.append(arrays)
    for hinted, plain in zip(*written, strict=True):
        np.testing.assert_array_equal(hinted, plain)
