"""Groups of layers with their own learning rate and weight decay, or frozen.

A group never costs a copy: the optimizer lays a plain dict out group by group, so each
group is one contiguous range of the buffers, and the kernel runs once per range with that
group's scalars. (A FlatParams keeps its own order: each run of neighbouring layers of one
group is then one range.)
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastoptim.optim.hyperparameters import check_flag, check_lr_or_schedule, check_nonnegative

Selector = str | Collection[str] | Callable[[str], bool]


@dataclass(frozen=True)
class Group:
    """Layers selected by ``layers``, with hyper-parameters of their own.

    Parameters
    ----------
    layers : str, collection of str, or callable
        A glob pattern matched against the layer names (``"b*"``), the names themselves
        (``["W1", "b1"]``), or a predicate called with each name (``lambda name: ...``).
    lr : float, schedule or None
        The group's learning rate (a float, or a callable of ``t`` as the optimizer's
        ``lr``); None follows the optimizer's ``lr``, including its schedule.
    weight_decay : float or None
        The group's weight decay; None follows the optimizer's.
    frozen : bool
        Never update these layers: their parameters and state stay as they are, their
        gradients may be left out of a dict of gradients and are never read (nor counted in
        the clipping norm or the NaN/Inf check).

    Examples
    --------
    >>> import numpy as np, fastoptim
    >>> params = {"W1": np.ones((2, 2)), "b1": np.ones((2, 1))}
    >>> opt = fastoptim.AdamW(params, lr=0.1, weight_decay=0.5,
    ...                       groups=[fastoptim.Group("b*", weight_decay=0.0)])
    >>> opt.step({"dW1": np.zeros((2, 2)), "db1": np.zeros((2, 1))})
    >>> float(params["W1"][0, 0]), float(params["b1"][0, 0])   # 1 - 0.1 * 0.5, and 1
    (0.95, 1.0)
    """

    layers: Selector
    lr: Any = None
    weight_decay: float | None = None
    frozen: bool = False


@dataclass(frozen=True)
class ResolvedGroup:
    """A group with its layers named and its settings checked; index 0 is the default
    group (the optimizer's own settings, every layer no other group selected)."""

    names: tuple[str, ...]
    lr: Any = None
    weight_decay: float | None = None
    frozen: bool = False

    def describe(self, lr_setting: Callable[[Any], Any]) -> dict[str, Any]:
        """Plain values for a state_dict (``lr_setting`` turns a rate or schedule into one)."""
        return {
            "layers": list(self.names),
            "lr": None if self.lr is None else lr_setting(self.lr),
            "weight_decay": self.weight_decay,
            "frozen": self.frozen,
        }


def resolve_groups(
    groups: Sequence[Group | Mapping[str, Any]] | None,
    names: Sequence[str],
    options: Collection[str],
    t: int,
) -> list[ResolvedGroup]:
    """The default group followed by ``groups``, each naming its layers, all checked.

    ``options``: the hyper-parameters this algorithm lets a group set (``lr``,
    ``weight_decay``). A layer may belong to one group at most; every selector must select
    something (an empty group is most likely a typo in a pattern).
    """
    if groups is None:
        return [ResolvedGroup(tuple(names))]
    if isinstance(groups, (str, bytes, Mapping, Group)) or not isinstance(groups, Sequence):
        raise TypeError(
            "groups must be a list of fastoptim.Group (or of dicts with the same keys); "
            f"got {type(groups).__name__}"
        )
    owner: dict[str, int] = {}
    resolved = []
    for index, group in enumerate(groups):
        label = f"groups[{index}]"
        group = _as_group(group, label, options)
        selected = _select(group.layers, names, label)
        for name in selected:
            if name in owner:
                raise ValueError(
                    f"layer {name!r} is in groups[{owner[name]}] and {label}; a layer may be "
                    "in one group only"
                )
            owner[name] = index
        resolved.append(
            ResolvedGroup(
                names=selected,
                lr=None if group.lr is None else _check_lr(group.lr, t, label),
                weight_decay=None
                if group.weight_decay is None
                else check_nonnegative(group.weight_decay, f"{label}.weight_decay"),
                frozen=check_flag(group.frozen, f"{label}.frozen"),
            )
        )
    default = ResolvedGroup(tuple(name for name in names if name not in owner))
    return [default, *resolved]


def restored_groups(saved: object, current: Sequence[ResolvedGroup], t: int) -> list[ResolvedGroup]:
    """``current`` with the learning rates and weight decays of ``saved`` (a state_dict's
    ``groups``), after checking that it describes the same groups of layers. State saved
    without groups fits any grouping: the groups are then new settings, kept as they are."""
    if isinstance(saved, Sequence) and len(saved) == 0:
        return list(current)
    if not isinstance(saved, Sequence) or len(saved) != len(current) - 1:
        raise ValueError(
            f"state_dict['groups'] holds {_count(saved)} groups; this optimizer has "
            f"{len(current) - 1}: construct it with the groups it was saved with"
        )
    restored = [current[0]]
    for index, (group, now) in enumerate(zip(saved, current[1:], strict=True)):
        label = f"state_dict['groups'][{index}]"
        if not isinstance(group, Mapping) or set(group) != {
            "layers",
            "lr",
            "weight_decay",
            "frozen",
        }:
            raise KeyError(f"{label} must hold 'layers', 'lr', 'weight_decay' and 'frozen'")
        if list(group["layers"]) != list(now.names) or group["frozen"] != now.frozen:
            raise ValueError(
                f"{label} is layers {list(group['layers'])[:8]} (frozen={group['frozen']}); "
                f"this optimizer's groups[{index}] is {list(now.names)[:8]} "
                f"(frozen={now.frozen}): construct it with the groups it was saved with"
            )
        lr = None if group["lr"] is None else _check_lr(group["lr"], t, label)
        decay = group["weight_decay"]
        if decay is not None:
            decay = check_nonnegative(decay, f"{label}.weight_decay")
        restored.append(ResolvedGroup(now.names, lr, decay, now.frozen))
    return restored


def _count(saved: object) -> str:
    return str(len(saved)) if isinstance(saved, Sequence) else f"a {type(saved).__name__}, not"


def layer_order(groups: Sequence[ResolvedGroup], names: Sequence[str]) -> list[str]:
    """``names`` reordered group by group (the default group first), each group in the
    order of ``names``: the layout that makes every group one contiguous range."""
    group_of = {name: index for index, group in enumerate(groups) for name in group.names}
    return sorted(names, key=group_of.__getitem__)  # stable: keeps order within a group


def _as_group(group: object, label: str, options: Collection[str]) -> Group:
    if isinstance(group, Mapping):
        unknown = sorted(set(group) - {"layers", "lr", "weight_decay", "frozen"})
        if unknown or "layers" not in group:
            raise KeyError(
                f"{label} has keys {sorted(group)}; a group is 'layers' plus any of 'lr', "
                "'weight_decay', 'frozen'"
            )
        group = Group(**group)
    if not isinstance(group, Group):
        raise TypeError(f"{label} must be a fastoptim.Group or a dict; got {type(group).__name__}")
    for option in ("lr", "weight_decay"):
        if getattr(group, option) is not None and option not in options:
            raise ValueError(
                f"{label} sets {option}, which this optimizer does not have; "
                f"a group may set {sorted(options)} or frozen"
            )
    return group


def _select(selector: object, names: Sequence[str], label: str) -> tuple[str, ...]:
    if isinstance(selector, str):
        selected = tuple(name for name in names if fnmatch.fnmatchcase(name, selector))
        what = f"the pattern {selector!r}"
    elif callable(selector):
        selected = tuple(name for name in names if _predicate(selector, name, label))
        what = "its predicate"
    elif isinstance(selector, Collection) and not isinstance(selector, bytes):
        unknown = [name for name in selector if name not in names]
        if unknown:
            raise KeyError(
                f"{label}.layers names {unknown[:8]}, which are not layers of these "
                f"parameters (they are {list(names)[:8]}{'...' if len(names) > 8 else ''})"
            )
        wanted = set(selector)
        selected = tuple(name for name in names if name in wanted)
        what = "its list"
    else:
        raise TypeError(
            f"{label}.layers must be a glob pattern, a list of layer names or a predicate "
            f"of the name; got {type(selector).__name__}"
        )
    if not selected:
        raise ValueError(
            f"{label} selects no layer ({what} matches none of {list(names)[:8]}); "
            "check the names, or leave the group out"
        )
    return selected


def _predicate(selector: Callable[[str], object], name: str, label: str) -> bool:
    answer = selector(name)
    if not isinstance(answer, (bool, np.bool_)):
        raise TypeError(
            f"{label}.layers returned {answer!r} for {name!r}; a predicate must return True or False"
        )
    return bool(answer)


def _check_lr(value: Any, t: int, label: str) -> Any:
    try:
        return check_lr_or_schedule(value, t)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{label}.lr: {error}") from error
