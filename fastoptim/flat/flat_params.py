"""FlatParams: a dict-compatible view of many named arrays that live in one flat buffer."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping

import numpy as np

from fastoptim.dtypes import float_dtype
from fastoptim.flat.layout import Layout, aligned_empty


class FlatParams(MutableMapping):
    """Named arrays that are views into one contiguous, 64-byte aligned 1-D buffer.

    Reads give views (``params['W1']`` has W1's shape and writes go to the buffer);
    assignment copies into the view, so code that rebinds entries
    (``params['W1'] = params['W1'] - lr * dW1``) keeps the data flat. The set of keys is
    fixed by the layout: keys are ``prefix + name`` for every layer name, in layout order.

    Parameters
    ----------
    layout : Layout
        Names, shapes, offsets and dtype; shared with every buffer of the same model.
    buffer : ndarray, optional
        A C-contiguous 1-D array of ``layout.size`` elements of ``layout.dtype``. A zeroed,
        aligned buffer is made when omitted.
    prefix : str
        Put before every layer name to form the keys: ``"d"`` keys gradients and optimizer
        state the way the course does (``'dW1'``, ``'db1'``).
    stored_dtype : dtype, optional
        The buffer's dtype where it is not the layout's: optimizer state stored in fewer
        bits (bfloat16 bit patterns in uint16).
    """

    __slots__ = ("_views", "buffer", "layout", "prefix")

    def __init__(
        self,
        layout: Layout,
        buffer: np.ndarray | None = None,
        prefix: str = "",
        stored_dtype: np.dtype | None = None,
    ) -> None:
        dtype = layout.dtype if stored_dtype is None else np.dtype(stored_dtype)
        if buffer is None:
            buffer = layout.zeros() if stored_dtype is None else aligned_zeros(layout.size, dtype)
        elif not (
            isinstance(buffer, np.ndarray)
            and buffer.ndim == 1
            and buffer.size == layout.size
            and buffer.dtype == dtype
            and buffer.flags.c_contiguous
        ):
            raise ValueError(
                f"FlatParams buffer must be a C-contiguous 1-D {dtype} array of "
                f"{layout.size} elements; got {_describe(buffer)}"
            )
        self.layout = layout
        self.buffer = buffer
        self.prefix = prefix
        self._views = {
            prefix + name: buffer[layout.span(name)].reshape(shape)
            for name, shape in zip(layout.names, layout.shapes, strict=True)
        }

    # -- the Mapping protocol -------------------------------------------------------------
    def __getitem__(self, key: str) -> np.ndarray:
        try:
            return self._views[key]
        except KeyError:
            raise KeyError(self._unknown_key_message(key)) from None

    def __setitem__(self, key: str, value: object) -> None:
        # backward code assigns every gradient on every step: the common case (an array of
        # the view's shape and dtype) is checked and copied in a few attribute reads
        view = self._views.get(key)
        if (
            view is not None
            and type(value) is np.ndarray
            and value.dtype is view.dtype
            and value.shape == view.shape
        ):
            view[...] = value
            return
        self._assign_checked(key, value)

    def _assign_checked(self, key: str, value: object) -> None:
        if key not in self._views:
            raise KeyError(
                self._unknown_key_message(key)
                + " A FlatParams has a fixed set of layers: flatten a new dict to add one."
            )
        view = self._views[key]
        value = np.asarray(value)
        if value.shape != view.shape:
            raise ValueError(
                f"FlatParams[{key!r}] has shape {view.shape}; got shape {value.shape}. "
                "Assign an array of exactly that shape (no broadcasting)."
            )
        if not np.can_cast(value.dtype, view.dtype, casting="safe"):
            raise TypeError(
                f"FlatParams[{key!r}] holds {view.dtype}; got {value.dtype}, which would be cast "
                f"with loss. Convert explicitly: value.astype(np.{view.dtype.name})."
            )
        np.copyto(view, value)

    def __delitem__(self, key: str) -> None:
        raise TypeError(
            f"cannot delete {key!r}: a FlatParams has a fixed set of layers. "
            "Build a new one with fastoptim.flatten(dict_without_that_layer)."
        )

    def __iter__(self) -> Iterator[str]:
        return iter(self._views)

    def __len__(self) -> int:
        return len(self._views)

    def __contains__(self, key: object) -> bool:
        return key in self._views

    def __repr__(self) -> str:
        shown = ", ".join(f"{k!r}: {v.shape}" for k, v in list(self._views.items())[:6])
        more = ", ..." if len(self._views) > 6 else ""
        return f"FlatParams({{{shown}{more}}}, dtype={self.layout.dtype}, size={self.layout.size})"

    # -- making related buffers ----------------------------------------------------------
    def zeros_like(self, prefix: str | None = None) -> FlatParams:
        """A zeroed FlatParams with the same layout, keyed with ``prefix`` (default: ours).

        ``params.zeros_like(prefix="d")`` gives a gradient buffer keyed ``'dW1', 'db1', ...``
        into whose views backward code can write directly:
        ``np.dot(dZ1, X.T, out=grads['dW1'])``.
        """
        return FlatParams(self.layout, prefix=self.prefix if prefix is None else prefix)

    def copy(self) -> FlatParams:
        """A FlatParams with the same layout and keys and its own copy of the buffer."""
        buffer = aligned_zeros(self.layout.size, self.buffer.dtype)
        np.copyto(buffer, self.buffer)
        return FlatParams(self.layout, buffer, self.prefix, self.stored_dtype)

    @property
    def stored_dtype(self) -> np.dtype | None:
        """The buffer's dtype where it is not the layout's, else None."""
        return None if self.buffer.dtype == self.layout.dtype else self.buffer.dtype

    def __copy__(self) -> FlatParams:
        return self.copy()

    def __deepcopy__(self, memo: dict) -> FlatParams:
        return self.copy()

    def __reduce__(self):
        return (_rebuild, (self.layout.describe(), np.array(self.buffer), self.prefix))

    def _unknown_key_message(self, key: object) -> str:
        keys = list(self._views)
        shown = keys if len(keys) <= 8 else [*keys[:8], "..."]
        return f"{key!r} is not a layer of this FlatParams (keys: {shown})."


def _rebuild(described: dict, buffer: np.ndarray, prefix: str) -> FlatParams:
    layout = Layout(described["names"], described["shapes"], described["dtype"])
    aligned = aligned_zeros(layout.size, buffer.dtype)
    np.copyto(aligned, buffer)
    stored = None if buffer.dtype == layout.dtype else buffer.dtype
    return FlatParams(layout, aligned, prefix, stored)


def flatten(parameters: Mapping, dtype: object = None) -> FlatParams:
    """Copy a dict of arrays into one contiguous, 64-byte aligned buffer.

    Parameters
    ----------
    parameters : Mapping[str, array_like]
        The layers in the order they should be laid out (the dict's own order).
    dtype : float32 or float64, optional
        The buffer's dtype. When omitted every array must already have the same float dtype;
        when given, arrays are converted to it (a lossy float64 -> float32 conversion is
        allowed here because it was asked for).

    Returns
    -------
    FlatParams
        Same keys, order and shapes as ``parameters``; ``.buffer`` is the flat array and
        ``.layout`` the shared layout.
    """
    if not isinstance(parameters, Mapping):
        raise TypeError(
            f"flatten expects a dict of arrays (name -> array); got {type(parameters).__name__}"
        )
    arrays = {name: np.asarray(value) for name, value in parameters.items()}
    if dtype is None:
        dtype = _common_float_dtype(arrays)
    else:
        dtype = float_dtype(dtype, "flatten(dtype=...)")
        for name, array in arrays.items():
            if not np.can_cast(array.dtype, dtype, casting="same_kind"):
                raise TypeError(
                    f"parameters[{name!r}] has dtype {array.dtype}, which cannot be converted "
                    f"to {dtype} without losing its kind; pass real-valued arrays."
                )
    layout = Layout(arrays.keys(), (a.shape for a in arrays.values()), dtype)
    flat = FlatParams(layout)
    for name, array in arrays.items():
        np.copyto(flat[name], array, casting="same_kind")
    return flat


def _common_float_dtype(arrays: Mapping[str, np.ndarray]) -> np.dtype:
    dtype = None
    for name, array in arrays.items():
        this = float_dtype(array.dtype, f"parameters[{name!r}]")
        if dtype is not None and this != dtype:
            raise TypeError(
                f"parameters[{name!r}] is {this} but earlier layers are {dtype}; "
                "pass flatten(parameters, dtype=np.float32) (or float64) to choose one."
            )
        dtype = this
    return dtype if dtype is not None else np.dtype(np.float64)


def _describe(array: object) -> str:
    if isinstance(array, np.ndarray):
        order = "C-contiguous" if array.flags.c_contiguous else "non-contiguous"
        return f"{order} {array.dtype} array of shape {array.shape}"
    return type(array).__name__


def aligned_zeros(size: int, dtype: np.dtype) -> np.ndarray:
    """A zeroed 1-D ``dtype`` array of ``size`` elements, 64-byte aligned."""
    buffer = aligned_empty(size, dtype)
    buffer.fill(0)
    return buffer
