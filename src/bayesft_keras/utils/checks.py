"""Argument checks shared by the whole package.

Each check returns the normalised value, or raises `ValueError` with a message that names
the argument, quotes the value received and says what is allowed, in Keras's style:
"`chips` must be an integer >= 1. Received: chips=0".
"""

import math

import numpy as np


def _is_int(value):
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def _is_number(value):
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))


def integer(name, value, minimum=1, allow_none=False, noun="an integer"):
    """An `int` >= `minimum` (or `None` when `allow_none`)."""
    if value is None and allow_none:
        return None
    if not _is_int(value) or value < minimum:
        allowed = f"{noun} >= {minimum}" + (" or None" if allow_none else "")
        raise ValueError(f"`{name}` must be {allowed}. Received: {name}={value!r}")
    return int(value)


def positive_int(name, value, allow_none=False):
    """An `int` >= 1 (or `None` when `allow_none`)."""
    return integer(name, value, minimum=1, allow_none=allow_none)


def count(name, value, minimum=1, allow_none=False):
    """As `integer`, worded "an int >= 1" as the hypermodel's, study's and baselines' messages always were."""
    return integer(name, value, minimum=minimum, allow_none=allow_none, noun="an int")


def seed(value, name="seed"):
    """A non-negative `int` seed."""
    if not _is_int(value) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative int. Received: {name}={value!r}")
    return int(value)


def finite(name, value, allow_none=False):
    """A finite real number, as `float` (or `None` when `allow_none`)."""
    if value is None and allow_none:
        return None
    try:
        number = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        number = float("nan")
    if not math.isfinite(number):
        raise ValueError(f"`{name}` must be a finite number. Received: {name}={value!r}")
    return number


def positive(name, value, allow_none=False):
    """A finite number > 0, as `float` (or `None` when `allow_none`)."""
    if value is None and allow_none:
        return None
    if not _is_number(value) or not math.isfinite(float(value)) or not value > 0:
        allowed = "a positive number" + (" or None" if allow_none else "")
        raise ValueError(f"`{name}` must be {allowed}. Received: {name}={value!r}")
    return float(value)


def non_negative(name, value):
    """A finite number >= 0, as `float`."""
    if not _is_number(value) or not math.isfinite(float(value)) or value < 0:
        raise ValueError(f"`{name}` must be a finite number >= 0. Received: {name}={value!r}")
    return float(value)


def in_range(name, value, low, high, closed=(True, True)):
    """A number in [low, high]; `closed` says which ends belong to the interval."""
    left = "[" if closed[0] else "("
    right = "]" if closed[1] else ")"
    ok = _is_number(value) and math.isfinite(float(value))
    if ok:
        ok = (value >= low if closed[0] else value > low) and (value <= high if closed[1] else value < high)
    if not ok:
        raise ValueError(f"`{name}` must be in {left}{low}, {high}{right}. Received: {name}={value!r}")
    return float(value)


def rate_range(name, value):
    """A pair (low, high) of dropout rates with 0 <= low < high < 1."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a pair (low, high). Received: {name}={value!r}") from None
    if not 0.0 <= low < high < 1.0:
        raise ValueError(f"`{name}` must satisfy 0 <= low < high < 1. Received: {name}={value!r}")
    return low, high


def number_list(name, values):
    """A non-empty list of finite numbers, as a list of `float`."""
    try:
        array = np.asarray(values, dtype="float64").reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a list of numbers. Received: {name}={values!r}") from None
    if array.size == 0 or not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` must be a non-empty list of finite numbers. Received: {name}={values!r}")
    return array.tolist()


def one_of(name, value, allowed):
    """`value` when it is one of `allowed`."""
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"`{name}` must be one of {choices}. Received: {name}={value!r}")
    return value


def boolean(name, value):
    """A `bool` (not merely truthy)."""
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be a bool. Received: {name}={value!r}")
    return value


def finite_array(name, array, owner=None):
    """Raises unless the numeric array holds only finite values, naming the first example that does not.

    Args:
        name: the array's name in the message ("x", "x_train", ...).
        array: any array; integer and boolean arrays are finite by construction.
        owner: what the array belongs to, in the message (e.g. "dataset 'digits'").
    """
    array = np.asarray(array)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.complexfloating)):
        return
    # One float64 sum is finite exactly when every value is, unless it overflows: then look closer.
    if array.size == 0 or np.isfinite(np.sum(array, dtype=np.result_type(array.dtype, np.float64))):
        return
    rows = array.reshape(len(array), -1) if array.ndim > 1 else array.reshape(-1, 1)
    bad = ~np.isfinite(rows)
    per_example = bad.any(axis=1)
    if not per_example.any():
        return
    first = int(np.argmax(per_example))
    where = f"`{name}` of {owner}" if owner else f"`{name}`"
    raise ValueError(
        f"{where} must hold finite numbers. Received: {int(bad.sum())} NaN or infinite value(s) in "
        f"{int(per_example.sum())} of {len(per_example)} examples, the first in example {first}"
    )
