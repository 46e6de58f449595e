"""Learning-rate schedules of the BayesFT training recipe."""

import math

import keras
from keras import ops

_ANNEAL = ("cos", "linear")


@keras.saving.register_keras_serializable(package="bayesft_keras")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """The one-cycle policy (Smith & Topin, 2019), as PyTorch's `OneCycleLR`.

    The learning rate rises from ``max_learning_rate / div_factor`` to
    ``max_learning_rate`` over the first ``pct_start`` of the steps, then
    falls to ``max_learning_rate / (div_factor * final_div_factor)`` at the
    last step; both phases follow ``anneal_strategy``. Steps past
    ``total_steps`` keep the final rate. Unlike PyTorch, the optimizer's
    momentum is not cycled.

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
        for name, value in (
            ("max_learning_rate", max_learning_rate),
            ("div_factor", div_factor),
            ("final_div_factor", final_div_factor),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"`{name}` must be a positive number. Received: {name}={value!r}")
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(f"`total_steps` must be an int >= 1. Received: total_steps={total_steps!r}")
        if isinstance(pct_start, bool) or not isinstance(pct_start, (int, float)) or not 0 < pct_start < 1:
            raise ValueError(f"`pct_start` must be in (0, 1). Received: pct_start={pct_start!r}")
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

    def _anneal(self, start, end, pct):
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (1.0 + ops.cos(math.pi * pct))
        return start + (end - start) * pct

    def __call__(self, step):
        initial = self.max_learning_rate / self.div_factor
        final = initial / self.final_div_factor
        # PyTorch's phase boundaries: the peak is reached at step
        # pct_start * total - 1, the final rate at step total - 1.
        peak_step = self.pct_start * self.total_steps - 1.0
        last_step = self.total_steps - 1.0
        step = ops.minimum(ops.cast(step, "float32"), last_step)
        rising = ops.clip(step / max(peak_step, 1e-12), 0.0, 1.0)
        falling = ops.clip((step - peak_step) / max(last_step - peak_step, 1e-12), 0.0, 1.0)
        return ops.where(
            step <= peak_step,
            self._anneal(initial, self.max_learning_rate, rising),
            self._anneal(self.max_learning_rate, final, falling),
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
