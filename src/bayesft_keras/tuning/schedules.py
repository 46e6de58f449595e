"""Learning-rate schedules of the BayesFT training recipe."""

import math

import keras
from keras import ops

from bayesft_keras.utils import checks

_ANNEAL = ("cos", "linear")


@keras.saving.register_keras_serializable(package="bayesft_keras")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """The one-cycle policy (Smith & Topin, 2019), as PyTorch's `OneCycleLR`.

    The learning rate rises from `max_learning_rate / div_factor` to
    `max_learning_rate` over the first `pct_start` of the steps, then
    falls to `max_learning_rate / (div_factor * final_div_factor)` at the
    last step; both phases follow `anneal_strategy`. Steps past
    `total_steps` keep the final rate. PyTorch also cycles the optimizer's
    momentum against the rate: `momentum` gives that schedule, for
    `bayesft_keras.tuning.recipe.TorchAdam`.

    Args:
        max_learning_rate: the peak rate (the "lr" of the BayesFT recipes).
        total_steps: optimizer steps of the whole training (epochs x steps
            per epoch).
        pct_start: fraction of the steps spent rising.
        anneal_strategy: "cos" (cosine) or "linear".
        div_factor: initial rate = max_learning_rate / div_factor.
        final_div_factor: final rate = initial rate / final_div_factor.
    """

    def __init__(
        self,
        max_learning_rate,
        total_steps,
        pct_start=0.3,
        anneal_strategy="cos",
        div_factor=25.0,
        final_div_factor=1e4,
    ):
        checks.positive("max_learning_rate", max_learning_rate)
        checks.positive("div_factor", div_factor)
        checks.positive("final_div_factor", final_div_factor)
        total_steps = checks.count("total_steps", total_steps)
        checks.in_range("pct_start", pct_start, 0, 1, closed=(False, False))
        if anneal_strategy not in _ANNEAL:
            raise ValueError(
                f"`anneal_strategy` must be one of {list(_ANNEAL)}. "
                f"Received: anneal_strategy={anneal_strategy!r}"
            )
        self.max_learning_rate = float(max_learning_rate)
        self.total_steps = total_steps
        self.pct_start = float(pct_start)
        self.anneal_strategy = anneal_strategy
        self.div_factor = float(div_factor)
        self.final_div_factor = float(final_div_factor)

    def __call__(self, step):
        initial = self.max_learning_rate / self.div_factor
        final = initial / self.final_div_factor
        return _two_phases(
            step, self.total_steps, self.pct_start, self.anneal_strategy,
            initial, self.max_learning_rate, final,
        )

    def momentum(self, base_momentum=0.85, max_momentum=0.95):
        """The momentum (Adam's beta_1) schedule PyTorch's `OneCycleLR` runs beside
        this one by default: `max_momentum` -> `base_momentum` while the rate
        rises, back to `max_momentum` while it falls."""
        return OneCycleMomentum(
            self.total_steps, self.pct_start, self.anneal_strategy, base_momentum, max_momentum
        )

    def get_config(self):
        return {
            "max_learning_rate": self.max_learning_rate,
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "anneal_strategy": self.anneal_strategy,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
        }


def _anneal(strategy, start, end, pct):
    if strategy == "cos":
        return end + (start - end) / 2.0 * (1.0 + ops.cos(math.pi * pct))
    return start + (end - start) * pct


def _two_phases(step, total_steps, pct_start, strategy, start, peak, end):
    """`start` -> `peak` over the first `pct_start` of the steps, then -> `end`."""
    # PyTorch's phase boundaries: the peak is reached at step
    # pct_start * total - 1, the end value at step total - 1.
    peak_step = pct_start * total_steps - 1.0
    last_step = total_steps - 1.0
    step = ops.minimum(ops.cast(step, "float32"), last_step)
    rising = ops.clip(step / max(peak_step, 1e-12), 0.0, 1.0)
    falling = ops.clip((step - peak_step) / max(last_step - peak_step, 1e-12), 0.0, 1.0)
    return ops.where(
        step <= peak_step,
        _anneal(strategy, start, peak, rising),
        _anneal(strategy, peak, end, falling),
    )


@keras.saving.register_keras_serializable(package="bayesft_keras")
class OneCycleMomentum:
    """The momentum half of PyTorch's `OneCycleLR` (`cycle_momentum=True`).

    beta_1 falls from `max_momentum` to `base_momentum` over the first
    `pct_start` of the steps (while the learning rate rises), then returns
    to `max_momentum` at the last step. Made by `OneCycle.momentum`.

    Args:
        total_steps, pct_start, anneal_strategy: as the `OneCycle` it follows.
        base_momentum: the momentum at the learning rate's peak.
        max_momentum: the momentum at the first and last steps.
    """

    def __init__(
        self, total_steps, pct_start=0.3, anneal_strategy="cos", base_momentum=0.85,
        max_momentum=0.95,
    ):
        OneCycle(1.0, total_steps, pct_start, anneal_strategy)  # the same checks
        if not 0 <= base_momentum <= max_momentum < 1:
            raise ValueError(
                "Momenta must satisfy 0 <= base_momentum <= max_momentum < 1. Received: "
                f"base_momentum={base_momentum!r}, max_momentum={max_momentum!r}"
            )
        self.total_steps = total_steps
        self.pct_start = float(pct_start)
        self.anneal_strategy = anneal_strategy
        self.base_momentum = float(base_momentum)
        self.max_momentum = float(max_momentum)

    def __call__(self, step):
        return _two_phases(
            step, self.total_steps, self.pct_start, self.anneal_strategy,
            self.max_momentum, self.base_momentum, self.max_momentum,
        )

    def get_config(self):
        return {
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "anneal_strategy": self.anneal_strategy,
            "base_momentum": self.base_momentum,
            "max_momentum": self.max_momentum,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
