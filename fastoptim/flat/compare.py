"""Whether two layouts hold the same layers, and when not, what differs.

Two rules. *Positional* (buffers laid out alike, e.g. gradients for a one-call step;
``Layout.lines_up_with``): the same shapes in the same order and dtype, with names equal or
differing only by the course's ``'d'`` prefix (``'dW1'`` for ``'W1'``), so
``flatten(grads)`` of a course dict fits ``flatten(parameters)``. *By name* (state saved by layer name: state_dicts, checkpoints):
the same names, each with the same shape, and the dtype, in any order.

Messages name the first layer that differs and give both sides, never two descriptions
that read the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fastoptim.flat.layout import GRAD_PREFIX, Layout

FIX = (
    "make it from the parameters (params.zeros_like(prefix='d')), or flatten a dict with the "
    "same layers in the same order"
)


def layout_difference(layout: Layout, expected: Layout, label: str) -> str:
    """What differs between ``label``'s layout and the parameters', for an error message."""
    if layout.dtype != expected.dtype:
        return (
            f"{label} is {layout.dtype} but the parameters are {expected.dtype}; convert it "
            f"(fastoptim never casts silently)"
        )
    relation = _relation_of_first(layout.names, expected)
    for position, (name, shape) in enumerate(zip(layout.names, layout.shapes, strict=True)):
        if position >= len(expected):
            break
        want_name, want_shape = expected.names[position], expected.shapes[position]
        if relation(name) != want_name:
            where = _position_in(relation(name), expected)
            return (
                f"layer {position} of {label} is {name!r} {shape} where the parameters have "
                f"{want_name!r} {want_shape}{where}; {FIX}"
            )
        if shape != want_shape:
            return (
                f"{label}[{name!r}] has shape {shape} but parameters[{want_name!r}] has shape "
                f"{want_shape}; {FIX}"
            )
    if len(layout) == len(expected):  # every layer fits by one rule or the other
        return (
            f"the layer names of {label} mix the course's 'd' prefix with plain names "
            f"({list(layout.names[:4])}); name every layer one way; {FIX}"
        )
    if len(layout) < len(expected):
        missing = expected.names[len(layout)]
        return (
            f"{label} has {len(layout)} layers, the parameters {len(expected)}: it lacks "
            f"{missing!r} (layer {len(layout)}) and after; {FIX}"
        )
    extra = layout.names[len(expected)]
    return (
        f"{label} has {len(layout)} layers, the parameters {len(expected)}: {extra!r} "
        f"(layer {len(expected)}) and after are not parameters; {FIX}"
    )


def _relation_of_first(names: Sequence[str], expected: Layout) -> Callable[[str], str]:
    """The name rule (unchanged, without or with the course's 'd') that maps the most of
    ``names`` onto names of ``expected``: the one to report the first difference by."""
    rules: list[Callable[[str], str]] = [
        lambda name: name,
        lambda name: name[len(GRAD_PREFIX) :] if name.startswith(GRAD_PREFIX) else name,
        lambda name: GRAD_PREFIX + name,
    ]
    return max(rules, key=lambda rule: sum(rule(name) in expected for name in names))


def _position_in(name: str, expected: Layout) -> str:
    if name in expected:
        return f" ({name!r} is the parameters' layer {expected.index(name)}: the order differs)"
    return f" (the parameters have no {name!r})"


def layers_difference(described: object, expected: dict) -> str | None:
    """None when ``described`` (a ``Layout.describe()`` dict) holds ``expected``'s layers by
    name; else what differs: the dtype, a missing or extra layer, or a shape, named."""
    if not isinstance(described, dict) or described.keys() != expected.keys():
        return f"it describes no layout (expected the keys {sorted(expected)})"
    try:
        layers = dict(zip(described["names"], (tuple(s) for s in described["shapes"]), strict=True))
    except (TypeError, ValueError):
        return "its layout's names and shapes do not pair up"
    wanted = dict(zip(expected["names"], (tuple(s) for s in expected["shapes"]), strict=True))
    if described["dtype"] != expected["dtype"]:
        return f"it is {described['dtype']}, this optimizer {expected['dtype']}"
    for name, shape in wanted.items():
        if name not in layers:
            return f"it has no layer {name!r} (this optimizer's {shape})"
        if layers[name] != shape:
            return f"its layer {name!r} has shape {layers[name]}, this optimizer's {shape}"
    for name in layers:
        if name not in wanted:
            return f"it has a layer {name!r} that this optimizer does not have"
    return None
