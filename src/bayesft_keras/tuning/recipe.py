"""The training recipe shared by the search and the study: Adam, one-cycle, weight decay, clipping.

The BayesFT authors train with `torch.optim.Adam(weight_decay=1e-4)` under
`OneCycleLR`. Three things differ from `keras.optimizers.Adam`, and each
changes how a trained network tolerates drift:

- weight decay is L2 added to the gradient (coupled, after gradient clipping),
  not Keras's decoupled decay of the weights;
- `OneCycleLR` cycles Adam's beta_1 between 0.95 and 0.85 against the
  learning rate (`OneCycleMomentum`);
- epsilon (1e-8) is added after the bias correction of the second moment.

`TorchAdam` computes Adam that way, `one_cycle_adam` puts it under the
one-cycle schedule, `RECIPES` holds the peak rate, clipping and weight decay
of each architecture, and `compile_model` compiles a model with them. The
initialization is the architectures' own (`init="torch"`, PyTorch's default).
`BayesFTHyperModel` and `run_study` both train through this module.
"""

import dataclasses
import math

import keras
from keras import ops

from bayesft_keras.tuning.schedules import OneCycle
from bayesft_keras.tuning.schedules import OneCycleMomentum


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Adam with a one-cycle schedule peaking at `learning_rate`, as the authors train.

    The optimizer is `TorchAdam`: PyTorch's Adam, whose `weight_decay` is L2
    added to the gradient (coupled), with beta_1 cycled by the one-cycle
    schedule as PyTorch's `OneCycleLR` does; `clipvalue` clips every
    gradient element before, as PyTorch's `clip_grad_value_`.
    """

    learning_rate: float
    clipvalue: float = None
    weight_decay: float = None
    source: str = ""


# Training recipes by architecture (shared/REFERENCE.md). The paper gives
# lenet5, vgg11 and resnet18; the others are our choice by analogy.
RECIPES = {
    "lenet5": Recipe(0.01, clipvalue=0.1, weight_decay=1e-4, source="paper"),
    "mlp": Recipe(0.01, clipvalue=0.1, weight_decay=1e-4, source="as lenet5 (MNIST)"),
    "vgg11": Recipe(1e-3, source="paper"),
    "vgg16": Recipe(1e-3, source="as vgg11"),
    "alexnet": Recipe(1e-3, source="as vgg11"),
    "resnet18": Recipe(3e-4, source="paper"),
    "mobilenetv2": Recipe(3e-4, source="as resnet18 and the paper's SqueezeNet"),
}
CUSTOM_RECIPE = Recipe(1e-3, source="default for build_fn")

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
        l2: the coupled weight decay (PyTorch's `weight_decay`), >= 0.
        **kwargs: other `keras.optimizers.Optimizer` arguments (`clipvalue`,
            `clipnorm`, `name`, ...). Keras's decoupled `weight_decay` is
            refused: use `l2` or `keras.optimizers.AdamW`.
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
        learning_rate: the peak rate; constant when `total_steps` is None.
        total_steps: optimizer steps of the whole training.
        weight_decay: coupled L2 (PyTorch's Adam `weight_decay`), or None.
        clipvalue: gradient clipping by value (PyTorch's `clip_grad_value_`), or None.
    """
    l2 = weight_decay or 0.0
    if total_steps is None:
        return TorchAdam(learning_rate, l2=l2, clipvalue=clipvalue)
    schedule = OneCycle(learning_rate, total_steps)
    return TorchAdam(schedule, beta_1=schedule.momentum(), l2=l2, clipvalue=clipvalue)


def compile_model(model, optimizer, total_steps, loss="sparse_categorical_crossentropy", metrics=("accuracy",)):
    """Compiles `model` with the recipe's `optimizer` and marks it as trained by the recipe.

    The marks (`_bayesft_recipe`, `_bayesft_total_steps`) let a hypermodel's
    `fit` compile again when the schedule's length differs from the training's.

    Args:
        model: a `keras.Model`.
        optimizer: the optimizer, e.g. from `one_cycle_adam`.
        total_steps: the steps its schedule spans (None: a constant rate).
        loss: the loss (default: sparse categorical cross-entropy).
        metrics: the metrics (default: accuracy); None for none.
    """
    kwargs = {} if metrics is None else {"metrics": list(metrics)}
    model.compile(optimizer=optimizer, loss=loss, **kwargs)
    model._bayesft_recipe = True
    model._bayesft_total_steps = total_steps


def is_array_data(x):
    """Whether `x` (or the first of a dict/list of inputs) is an array, not batches."""
    if isinstance(x, dict):
        x = next(iter(x.values()), None)
    elif isinstance(x, (list, tuple)):
        x = x[0] if x else None
    return hasattr(x, "shape") and hasattr(x, "dtype")


def steps_per_epoch(x, batch_size, validation_split=0.0):
    """Optimizer steps of one epoch over `x`, or None when it cannot be known."""
    if is_array_data(x):
        if isinstance(x, dict):
            x = next(iter(x.values()))
        elif isinstance(x, (list, tuple)):
            x = x[0]
        samples = int(x.shape[0])
        if validation_split:
            samples = int(math.floor(samples * (1.0 - validation_split)))  # as Keras splits
        return math.ceil(samples / batch_size)
    try:
        return len(x)  # batches: tf.data with known cardinality, PyDataset
    except TypeError:
        return None
