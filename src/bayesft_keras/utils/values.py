"""Swept values as users write them, and the choice of the swept parameter and its values.

Shared by the command line and the tf_keras bridge's own command line, which must not import `bayesft_keras.cli`.
"""

import numpy as np


class UsageError(Exception):
    """A problem with the user's input: reported as one line, exit code 2."""


def parse_values(text):
    """`"start:stop:step"` (stop included) or `"a,b,c"` -> list of floats.

    Raises:
        UsageError: `text` is neither form, or holds no value.
    """
    text = text.strip()
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) != 3:
                raise ValueError
            start, stop, step = parts
            if step <= 0 or stop < start:
                raise UsageError(
                    f"--sigmas {text!r}: need start <= stop and step > 0 in start:stop:step."
                )
            count = int(np.floor((stop - start) / step + 1e-6)) + 1
            return np.round(start + step * np.arange(count), 10).tolist()
        values = [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise UsageError(
            f"--sigmas must be start:stop:step or a comma-separated list of numbers. Received: {text!r}"
        ) from None
    if not values:
        raise UsageError("--sigmas is empty.")
    return values


def is_sigma(param):
    """Whether `param` names a sigma: `sigma`, or `<i>.sigma` in a composed noise model."""
    return param == "sigma" or param.endswith(".sigma")


def sweep_param(names, param, noise):
    """The noise parameter to sweep: `param` checked against `names`, or the one sigma.

    Args:
        names: the parameter names every noise model of the chip has.
        param: the name asked for, or None to take the sigma (or the only parameter).
        noise: the device noise model, named in the messages.
    """
    names = set(names)
    if param is None:
        sigmas = sorted(n for n in names if is_sigma(n))
        if len(sigmas) == 1:
            return sigmas[0]
        if len(names) == 1:
            return next(iter(names))
        raise ValueError(
            f"Choose the parameter to sweep: `param` must be one of {sorted(names)} "
            f"(the parameters of {noise!r}). Received: param=None"
        )
    if param not in names:
        raise ValueError(
            f"`param` must be a parameter of the device noise {noise!r}: one of "
            f"{sorted(names)}. Received: param={param!r}"
        )
    return param


def sweep_values(param, sigmas, values, default):
    """The values to sweep `param` over: `sigmas` (for a sigma), `values`, or `default` (a sigma's).

    Args:
        param: the swept parameter, from `sweep_param`.
        sigmas, values: what the caller gave (at most one of them).
        default: the sweep of a sigma when neither is given.
    """
    if sigmas is not None:
        if not is_sigma(param):
            raise ValueError(
                f"`sigmas` sweeps a sigma, but the swept parameter is {param!r}: pass "
                f"`values=` instead. Received: sigmas={sigmas!r}"
            )
        return sigmas
    if values is None:
        if not is_sigma(param):
            raise ValueError(
                f"`values` is required to sweep {param!r} (the default covers sigma only)."
            )
        return default
    return values
