"""flatten, FlatParams and Layout: one aligned buffer with dict-compatible views."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import fastoptim
from fastoptim import FlatParams, Layout, flatten


def course_params(dtype=np.float64):
    rng = np.random.default_rng(0)
    shapes = {
        f"{kind}{i}": (3, 4) if kind == "W" else (3, 1) for i in range(1, 12) for kind in "Wb"
    }
    return {name: rng.standard_normal(shape).astype(dtype) for name, shape in shapes.items()}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flatten_keeps_keys_order_shapes_and_values(dtype):
    params = course_params(dtype)
    flat = flatten(params)
    assert list(flat) == list(params)  # 'W10' after 'W9': insertion order, never sorted
    assert list(flat.layout.names).index("W10") == list(flat.layout.names).index("b9") + 1
    assert len(flat) == len(params)
    assert flat.buffer.dtype == dtype and flat.buffer.ndim == 1
    assert flat.buffer.size == sum(a.size for a in params.values())
    assert flat.buffer.flags.c_contiguous
    assert flat.buffer.ctypes.data % 64 == 0
    for name, array in params.items():
        assert flat[name].shape == array.shape
        np.testing.assert_array_equal(flat[name], array)
        assert np.shares_memory(flat[name], flat.buffer)
    offsets = flat.layout.offsets
    assert list(offsets) == sorted(offsets)


def test_views_are_live_and_assignment_copies_into_the_buffer():
    flat = flatten(course_params())
    flat["W1"][0, 0] = 42.0
    assert flat.buffer[0] == 42.0
    before = flat["W1"]
    flat["W1"] = flat["W1"] - 1.0  # course code rebinds: the data stays in the buffer
    assert flat["W1"] is before
    assert flat.buffer[0] == 41.0


def test_assignment_checks_shape_and_dtype():
    flat = flatten(course_params(np.float32))
    with pytest.raises(
        ValueError, match=r"FlatParams\['b1'\] has shape \(3, 1\); got shape \(3,\)"
    ):
        flat["b1"] = np.zeros(3, dtype=np.float32)
    with pytest.raises(ValueError, match="shape"):
        flat["W1"] = np.zeros((4, 3), dtype=np.float32)  # transposed
    with pytest.raises(TypeError, match=r"astype\(np.float32\)"):
        flat["b1"] = np.zeros((3, 1))  # float64 into float32 would lose precision
    with pytest.raises(KeyError, match="W99"):
        flat["W99"] = np.zeros((3, 4), dtype=np.float32)
    with pytest.raises(TypeError, match="fixed set of layers"):
        del flat["W1"]
    np.testing.assert_array_equal(flat.buffer, flatten(course_params(np.float32)).buffer)


def test_zeros_like_shares_the_layout_and_keys_the_course_way():
    params = flatten(course_params())
    grads = params.zeros_like(prefix="d")
    assert grads.layout is params.layout
    assert list(grads) == ["d" + name for name in params]
    assert not grads.buffer.any()
    assert grads.buffer.ctypes.data % 64 == 0
    X = np.ones((4, 5))
    dZ = np.ones((3, 5))
    np.dot(dZ, X.T, out=grads["dW1"])  # backward writes straight into the buffer
    assert grads.buffer[: 3 * 4].sum() == 3 * 4 * 5


def test_empty_and_zero_dimensional_layers():
    params = {
        "W1": np.zeros((2, 0)),
        "scale": np.array(2.5),
        "b1": np.ones((3, 1)),
        "E": np.zeros(0),
    }
    flat = flatten(params)
    assert flat["W1"].shape == (2, 0)
    assert flat["scale"].shape == ()
    assert flat["scale"] == 2.5
    assert flat.layout.size == 4
    assert list(flat) == ["W1", "scale", "b1", "E"]


def test_dtype_rules():
    with pytest.raises(
        TypeError, match=r"parameters\['b1'\] is float32 but earlier layers are float64"
    ):
        flatten({"W1": np.zeros(2), "b1": np.zeros(2, dtype=np.float32)})
    with pytest.raises(TypeError, match="float32 or float64 only"):
        flatten({"W1": np.zeros(2, dtype=np.int64)})
    with pytest.raises(TypeError, match="float32 or float64 only"):
        flatten({"W1": np.zeros(2, dtype=np.float16)})
    with pytest.raises(TypeError, match="float32 or float64 only"):
        flatten({"W1": np.zeros(2)}, dtype=np.int32)
    with pytest.raises(TypeError, match="cannot be converted"):
        flatten({"W1": np.zeros(2, dtype=complex)}, dtype=np.float64)
    mixed = flatten({"W1": np.full(2, 0.1), "b1": np.ones(2, dtype=np.float32)}, dtype=np.float32)
    assert mixed.buffer.dtype == np.float32  # an explicit dtype converts, as asked
    assert mixed["W1"][0] == np.float32(0.1)


def test_copies_and_pickles_are_independent_and_aligned():
    flat = flatten(course_params())
    for clone in (flat.copy(), copy.deepcopy(flat), pickle.loads(pickle.dumps(flat))):
        assert list(clone) == list(flat) and clone.layout == flat.layout
        np.testing.assert_array_equal(clone.buffer, flat.buffer)
        assert not np.shares_memory(clone.buffer, flat.buffer)
        assert clone.buffer.ctypes.data % 64 == 0


def test_layout_equality_and_span():
    a = Layout(["W1", "b1"], [(2, 3), (2, 1)], np.float64)
    b = Layout(["W1", "b1"], [(2, 3), (2, 1)], "float64")
    assert a == b and hash(a) == hash(b)
    assert a != Layout(["W1", "b1"], [(2, 3), (2, 1)], np.float32)
    assert a != Layout(["b1", "W1"], [(2, 1), (2, 3)], np.float64)
    assert a.span("b1") == slice(6, 8)
    with pytest.raises(ValueError, match="unique"):
        Layout(["W1", "W1"], [(1,), (1,)], np.float64)


def test_flatparams_rejects_a_foreign_buffer():
    layout = Layout(["W1"], [(2, 2)], np.float64)
    with pytest.raises(ValueError, match="C-contiguous 1-D float64 array of 4 elements"):
        FlatParams(layout, np.zeros(4, dtype=np.float32))
    with pytest.raises(ValueError, match="4 elements"):
        FlatParams(layout, np.zeros(5))


def test_object_api_rebinds_the_callers_dict_to_live_views():
    params = course_params()
    original_W1 = params["W1"].copy()
    opt = fastoptim.Momentum(params, lr=0.1, beta=0.0)
    assert np.shares_memory(params["W1"], opt.params.buffer)
    grads = {"d" + k: np.ones_like(v) for k, v in params.items()}
    opt.step(grads)
    np.testing.assert_array_equal(params["W1"], original_W1 - 0.1)
