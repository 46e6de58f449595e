"""`TorchAdam`: Adam as PyTorch's `torch.optim.Adam` computes it, for the paper's recipes.

The BayesFT authors train with ``torch.optim.Adam(weight_decay=1e-4)`` under
``OneCycleLR``. Three things differ from `keras.optimizers.Adam`, and each
changes how a trained network tolerates drift:

- weight decay is L2 added to the gradient (coupled, after gradient clipping),
  not Keras's decoupled decay of the weights;
- ``OneCycleLR`` cycles Adam's beta_1 between 0.95 and 0.85 against the
  learning rate (`OneCycleMomentum`);
- epsilon (1e-8) is added after the bias correction of the second moment.
"""

import keras
from keras import ops

from bayesft_keras.tuning.schedules import OneCycle
from bayesft_keras.tuning.schedules import OneCycleMomentum


@keras.saving.register_keras_serializable(package="bayesft_keras")
class TorchAdam(keras.optimizers.Adam):
    """Adam with PyTorch's update rule and coupled L2 weight decay.

    Per step t, with gradient g of the weight w (clipped first, if asked)::

        g <- g + l2 * w
        m <- beta_1(t) * m + (1 - beta_1(t)) * g
        v <- beta_2 * v + (1 - beta_2) * g**2
        w <- w - lr(t) / (1 - beta_1(t)**t) * m / (sqrt(v / (1 - beta_2**t)) + epsilon)

    Args:
        learning_rate: a float or a `LearningRateSchedule` (e.g. `OneCycle`).
        beta_1: a float, or a `OneCycleMomentum` schedule of the step.
        beta_2: the second-moment decay.
        epsilon: added to the bias-corrected root of the second moment.
        l2: the coupled weight decay (PyTorch's ``weight_decay``), >= 0.
        **kwargs: other `keras.optimizers.Optimizer` arguments (``clipvalue``,
            ``clipnorm``, ``name``, ...). Keras's decoupled ``weight_decay`` is
            refused: use ``l2`` or `keras.optimizers.AdamW`.
    """

    def __init__(
        self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8, l2=0.0, **kwargs
    ):
        if kwargs.get("weight_decay"):
            raise ValueError(
                "TorchAdam's weight decay is coupled L2: pass `l2`, not `weight_decay`. "
                f"Received: weight_decay={kwargs['weight_decay']!r}"
            )
        if isinstance(l2, bool) or not isinstance(l2, (int, float)) or not 0 <= l2 < float("inf"):
            raise ValueError(f"`l2` must be a finite number >= 0. Received: l2={l2!r}")
        if isinstance(beta_1, dict):
            beta_1 = keras.saving.deserialize_keras_object(beta_1)
        if not isinstance(beta_1, OneCycleMomentum):
            if isinstance(beta_1, bool) or not isinstance(beta_1, (int, float)) or not 0 <= beta_1 < 1:
                raise ValueError(
                    "`beta_1` must be a number in [0, 1) or a OneCycleMomentum schedule. "
                    f"Received: beta_1={beta_1!r}"
                )
        super().__init__(
            learning_rate=learning_rate, beta_1=0.9, beta_2=beta_2, epsilon=epsilon, **kwargs
        )
        self.beta_1 = beta_1
        self.l2 = float(l2)

    def _beta_1_at(self, step, dtype):
        if isinstance(self.beta_1, OneCycleMomentum):
            return ops.cast(self.beta_1(step - 1), dtype)  # the schedule counts from step 0
        return ops.cast(self.beta_1, dtype)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        if self.l2:
            gradient = gradient + self.l2 * variable
        step = ops.cast(self.iterations + 1, dtype)
        beta_1 = self._beta_1_at(step, dtype)
        beta_2 = ops.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        self.assign(m, beta_1 * m + (1.0 - beta_1) * gradient)
        self.assign(v, beta_2 * v + (1.0 - beta_2) * ops.square(gradient))
        correction_1 = 1.0 - ops.power(beta_1, step)
        correction_2 = 1.0 - ops.power(beta_2, step)
        denominator = ops.sqrt(v / correction_2) + self.epsilon
        self.assign_sub(variable, lr / correction_1 * m / denominator)

    def get_config(self):
        config = super().get_config()
        config.pop("amsgrad", None)
        config.pop("weight_decay", None)
        beta_1 = self.beta_1
        if isinstance(beta_1, OneCycleMomentum):
            beta_1 = keras.saving.serialize_keras_object(beta_1)
        config.update(beta_1=beta_1, l2=self.l2)
        return config


def one_cycle_adam(learning_rate, total_steps=None, weight_decay=None, clipvalue=None):
    """The authors' training recipe: `TorchAdam` under `OneCycle` (and its momentum cycle).

    Args:
        learning_rate: the peak rate; constant when ``total_steps`` is None.
        total_steps: optimizer steps of the whole training.
        weight_decay: coupled L2 (PyTorch's Adam ``weight_decay``), or None.
        clipvalue: gradient clipping by value (PyTorch's ``clip_grad_value_``), or None.
    """
    l2 = weight_decay or 0.0
    if total_steps is None:
        return TorchAdam(learning_rate, l2=l2, clipvalue=clipvalue)
    schedule = OneCycle(learning_rate, total_steps)
    return TorchAdam(schedule, beta_1=schedule.momentum(), l2=l2, clipvalue=clipvalue)
