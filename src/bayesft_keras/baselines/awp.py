"""AWP baseline: adversarial weight perturbation (Wu, Xia and Wang, NeurIPS 2020).

As the BayesFT authors train it (BayesFTNA `utilis.fit_one_cycle_adv` with
`utils_awp.AdvWeightPerturb`, `pgd.attack_pgd`), each training step:

1. attacks the inputs with PGD under the L-inf norm: a uniform random start
   in [-epsilon, epsilon], then `steps` signed-gradient steps of
   `step_size`, each projected onto the epsilon-ball and the input range
   (their epsilon 0.02, step 0.001, 3 steps, one restart, inputs in [0, 1]);
2. perturbs every kernel (weights of rank > 1; biases and normalization
   parameters are left alone) by `v = gamma * ||w|| * g / ||g||`, where
   `g` is the gradient of the loss at the adversarial inputs: one ascent
   step normalized to relative norm gamma per layer (their gamma 0.01);
3. applies the gradient of the loss at the perturbed weights and the
   adversarial inputs to the *unperturbed* weights. The perturbation is
   never written to the variables (the step is computed with
   `stateless_call`), so it is undone exactly and the stored weights move
   only by the optimizer's update (and the optimizer's weight decay sees
   the unperturbed weights).

Differences from the authors' code, deliberate: their loop never calls
`restore`, so each step's perturbation stays in the weights; their PGD
backward passes leave gradients on the model that the optimizer then adds
(no `zero_grad` in between); their proxy step carries the proxy
optimizer's weight decay. Here the step is Wu et al.'s. Their AWP runs use SGD
at a constant learning rate 0.01; `AWPHyperModel` trains with the same recipe
as every other method of the comparison.

Backends: TensorFlow, JAX and PyTorch (one training step written with
`keras.Model.stateless_call`; each backend supplies only the gradient).
"""

import keras
import numpy as np
from keras import ops

from bayesft_keras.device.seeds import SeedStream
from bayesft_keras.tuning.hypermodel import BayesFTHyperModel
from bayesft_keras.utils import checks

# The authors' settings (BayesFTNA utilis.fit_one_cycle_adv, utils_awp.py).
GAMMA = 0.01
EPSILON = 0.02
STEP_SIZE = 0.001
STEPS = 3
INPUT_RANGE = (0.0, 1.0)
SETTINGS = {"gamma": GAMMA, "epsilon": EPSILON, "step_size": STEP_SIZE, "steps": STEPS, "input_range": INPUT_RANGE}
SUPPORTED_BACKENDS = ("tensorflow", "jax", "torch")
_EPS = 1e-20


@keras.saving.register_keras_serializable(package="bayesft_keras")
class AWPModel(keras.Model):
    """A functional model trained with adversarial weight perturbation.

    Built like a functional model, `AWPModel(inputs, outputs)` (or from a
    model with `awp_model`); inference, saving and drift evaluation are those
    of the functional model. Only `train_step` changes (see the module
    docstring): PGD on the inputs, a per-layer weight perturbation of
    relative norm `gamma`, and the update from the gradient at the
    perturbed point applied to the unperturbed weights. The loss is the
    compiled loss (losses added by layers are not included). Backends:
    TensorFlow, JAX and PyTorch.

    Args:
        inputs, outputs, name: as a functional `keras.Model`; one input.
        gamma: relative norm of the weight perturbation of each kernel
            (`||v|| / ||w||`); 0 turns it off.
        epsilon: L-inf radius of the input attack; 0 turns it off.
        step_size: PGD step size.
        steps: PGD steps after the random start.
        input_range: (low, high) the adversarial inputs are clipped to, or
            None for unbounded inputs.
        seed: seed of the attack's random starts (step `t` uses
            `(seed, t)`, so a step is reproducible).
        **kwargs: as `keras.Model`.
    """

    def __init__(
        self,
        inputs,
        outputs,
        name=None,
        *,
        gamma=GAMMA,  # the weight perturbation
        epsilon=EPSILON, step_size=STEP_SIZE, steps=STEPS, input_range=INPUT_RANGE, seed=0,  # the PGD attack
        **kwargs,
    ):
        super().__init__(inputs, outputs, name=name, **kwargs)
        self.gamma, self.epsilon, self.step_size, self.steps, self.input_range, self.seed = _check_settings(
            gamma, epsilon, step_size, steps, input_range, seed
        )
        if len(self.inputs) != 1:
            raise ValueError(
                f"AWP attacks one input tensor. Received: a model with {len(self.inputs)} inputs"
            )

    def get_config(self):
        config = super().get_config()
        config.update(
            gamma=self.gamma,
            epsilon=self.epsilon,
            step_size=self.step_size,
            steps=self.steps,
            input_range=None if self.input_range is None else list(self.input_range),
            seed=self.seed,
        )
        return config

    # -- the step, on values ---------------------------------------------------

    def perturbed_mask(self):
        """Per trainable variable: whether AWP perturbs it (kernels: rank > 1)."""
        return [len(v.shape) > 1 for v in self.trainable_variables]

    def _loss_at(self, trainable, non_trainable, x, y, sample_weight):
        y_pred, non_trainable = self.stateless_call(trainable, non_trainable, x, training=True)
        loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
        return loss, (y_pred, non_trainable)

    def _project(self, delta, x):
        delta = ops.clip(delta, -self.epsilon, self.epsilon)
        if self.input_range is not None:
            low, high = self.input_range
            delta = ops.maximum(ops.minimum(delta, high - x), low - x)
        return delta

    def _adversarial(self, trainable, non_trainable, x, y, sample_weight, iteration):
        x = ops.convert_to_tensor(x)
        if self.epsilon == 0:
            return x, non_trainable
        seed = SeedStream(
            ops.stack([ops.convert_to_tensor(self.seed, "int32"), ops.cast(iteration, "int32")])
        )
        delta = keras.random.uniform(
            ops.shape(x), -self.epsilon, self.epsilon, dtype=x.dtype, seed=seed
        )
        delta = self._project(delta, x)
        grad_x = _value_and_grad(
            lambda x_in, tv, ntv: self._loss_at(tv, ntv, x_in, y, sample_weight), 0
        )
        for _ in range(self.steps):
            (_, (_, non_trainable)), g = grad_x(x + delta, trainable, non_trainable)
            delta = self._project(delta + self.step_size * ops.sign(g), x)
        return ops.stop_gradient(x + delta), non_trainable

    def _awp(self, trainable, non_trainable, x, y, sample_weight, iteration):
        """(gradients at the perturbed point, loss, y_pred, non_trainable, x_adv, perturbation)."""
        x_adv, non_trainable = self._adversarial(trainable, non_trainable, x, y, sample_weight, iteration)
        grad_w = _value_and_grad(self._loss_at, 0)
        perturbation = [None] * len(trainable)
        if self.gamma > 0:
            (_, (_, non_trainable)), g = grad_w(trainable, non_trainable, x_adv, y, sample_weight)
            for i, (w, gi, on) in enumerate(zip(trainable, g, self.perturbed_mask())):
                if on:
                    scale = self.gamma * _norm(w) / (_norm(gi) + _EPS)
                    perturbation[i] = ops.stop_gradient(ops.cast(scale, gi.dtype) * gi)
        perturbed = [w if v is None else w + v for w, v in zip(trainable, perturbation)]
        (loss, (y_pred, non_trainable)), grads = grad_w(perturbed, non_trainable, x_adv, y, sample_weight)
        return grads, loss, y_pred, non_trainable, x_adv, perturbation

    # -- Keras hooks ------------------------------------------------------------

    def train_step(self, *args):
        backend = keras.backend.backend()
        _check_backend(backend)
        if backend == "jax":
            return self._stateless_train_step(*args)
        return self._stateful_train_step(*args)

    def _stateful_train_step(self, data):  # TensorFlow, torch
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        trainable = [ops.convert_to_tensor(v.value) for v in self.trainable_variables]
        non_trainable = [ops.convert_to_tensor(v.value) for v in self.non_trainable_variables]
        grads, loss, y_pred, non_trainable, _, _ = self._awp(
            trainable, non_trainable, x, y, sample_weight, self.optimizer.iterations
        )
        with _no_grad():
            for variable, value in zip(self.non_trainable_variables, non_trainable):
                variable.assign(value)
            self.optimizer.apply(grads, self.trainable_variables)
        self._loss_tracker.update_state(loss, sample_weight=ops.shape(x)[0])
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _stateless_train_step(self, state, data):  # JAX
        trainable, non_trainable, optimizer_values, metrics_values = state
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        index = [id(v) for v in self.optimizer.variables].index(id(self.optimizer.iterations))
        grads, loss, y_pred, non_trainable, _, _ = self._awp(
            trainable, non_trainable, x, y, sample_weight, optimizer_values[index]
        )
        trainable, optimizer_values = self.optimizer.stateless_apply(optimizer_values, grads, trainable)
        mapping = list(zip(self.metrics_variables, metrics_values))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            self._loss_tracker.update_state(loss, sample_weight=ops.shape(x)[0])
            logs = self.compute_metrics(x, y, y_pred, sample_weight)
        metrics_values = [
            value if scope.get_current_value(v) is None else scope.get_current_value(v)
            for v, value in mapping
        ]
        return logs, (trainable, non_trainable, optimizer_values, metrics_values)

    def compute_awp(self, x, y, sample_weight=None, iteration=None):
        """The parts of one training step at the current weights, without applying it.

        Args:
            x, y, sample_weight: one batch.
            iteration: the step index seeding the attack's random start
                (default: the optimizer's current iteration, as `train_step`).

        Returns:
            A dict of NumPy values: `inputs` (the adversarial inputs),
            `perturbation` (per trainable variable, None where not
            perturbed), `gradients` (at the perturbed weights: what the
            optimizer applies) and `loss`.
        """
        _check_backend(keras.backend.backend())
        if iteration is None:
            optimizer = getattr(self, "optimizer", None)
            iteration = 0 if optimizer is None else optimizer.iterations
        trainable = [ops.convert_to_tensor(v.value) for v in self.trainable_variables]
        non_trainable = [ops.convert_to_tensor(v.value) for v in self.non_trainable_variables]
        grads, loss, _, _, x_adv, perturbation = self._awp(
            trainable, non_trainable, ops.convert_to_tensor(x), ops.convert_to_tensor(y),
            sample_weight, ops.convert_to_tensor(iteration),
        )
        numpy = ops.convert_to_numpy
        return {
            "inputs": numpy(x_adv),
            "perturbation": [None if v is None else numpy(v) for v in perturbation],
            "gradients": [numpy(g) for g in grads],
            "loss": float(numpy(loss)),
        }


def awp_model(model, **kwargs):
    """`model`'s graph as an `AWPModel` (the layers are shared, not copied).

    Args:
        model: a functional or Sequential `keras.Model` with one input.
        **kwargs: the AWP settings of `AWPModel` (gamma, epsilon, step_size,
            steps, input_range, seed).
    """
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not isinstance(model, keras.Model) or not inputs or not outputs:
        raise ValueError(
            "`model` must be a functional or Sequential keras.Model built on a keras.Input. "
            f"Received: {model!r}"
        )
    inputs = inputs[0] if len(inputs) == 1 else inputs
    outputs = outputs[0] if len(outputs) == 1 else outputs
    return AWPModel(inputs, outputs, name=model.name, **kwargs)


class AWPHyperModel(BayesFTHyperModel):
    """The AWP baseline as a hypermodel: a zoo network trained by `AWPModel`.

    As `BayesFTHyperModel` (same sites, recipe and one-cycle schedule); the
    built model is an `AWPModel` with the authors' settings unless given.

    Args:
        gamma, epsilon, step_size, steps, input_range: as `AWPModel`.
        awp_seed: `AWPModel`'s `seed`.
        *args, **kwargs: as `BayesFTHyperModel`.
    """

    def __init__(self, *args, awp_seed=0, **kwargs):
        settings = {name: kwargs.pop(name, default) for name, default in SETTINGS.items()}
        super().__init__(*args, **kwargs)
        self.awp_settings = dict(settings, seed=awp_seed)
        _check_settings(**self.awp_settings)  # now rather than at the first trial

    def build(self, hp):
        model = super().build(hp)
        awp = awp_model(model, **self.awp_settings)
        if getattr(model, "_bayesft_recipe", False):
            self._compile(awp, model._bayesft_total_steps)
        elif model.compiled:
            awp.compile_from_config(model.get_compile_config())
        return awp

    def metric(self):
        """The drift-evaluation metric: plain accuracy."""
        return "accuracy"


# -- backends ----------------------------------------------------------------------


def _check_backend(backend):
    if backend not in SUPPORTED_BACKENDS:
        raise ValueError(
            f"AWP training needs gradients: it runs on the {', '.join(SUPPORTED_BACKENDS)} "
            f"backends. Received: KERAS_BACKEND={backend!r}"
        )


def _value_and_grad(fn, argnum, backend=None):
    """`fn(*args) -> (value, aux)` to `((value, aux), d value / d args[argnum])`."""
    backend = backend or keras.backend.backend()
    _check_backend(backend)
    if backend == "jax":
        import jax

        return jax.value_and_grad(fn, argnums=argnum, has_aux=True)
    if backend == "tensorflow":
        import tensorflow as tf

        def tf_value_and_grad(*args):
            with tf.GradientTape() as tape:
                tape.watch(args[argnum])
                value, aux = fn(*args)
            grads = tape.gradient(value, args[argnum], unconnected_gradients=tf.UnconnectedGradients.ZERO)
            return (value, aux), grads

        return tf_value_and_grad

    import torch

    def torch_value_and_grad(*args):
        args = list(args)
        target = args[argnum]
        leaves = [ops.convert_to_tensor(t).detach().requires_grad_(True) for t in keras.tree.flatten(target)]
        args[argnum] = keras.tree.pack_sequence_as(target, leaves)
        with torch.enable_grad():
            value, aux = fn(*args)
            grads = torch.autograd.grad(value, leaves, allow_unused=True)
        grads = [torch.zeros_like(l) if g is None else g for g, l in zip(grads, leaves)]
        aux = keras.tree.map_structure(lambda t: t.detach() if torch.is_tensor(t) else t, aux)
        return (value.detach(), aux), keras.tree.pack_sequence_as(target, grads)

    return torch_value_and_grad


class _no_grad:
    """torch.no_grad() on the torch backend, nothing elsewhere."""

    def __enter__(self):
        self._context = None
        if keras.backend.backend() == "torch":
            import torch

            self._context = torch.no_grad()
            self._context.__enter__()

    def __exit__(self, *exc):
        if self._context is not None:
            self._context.__exit__(*exc)


def _norm(x):
    return ops.sqrt(ops.sum(ops.square(x)))


def _check_settings(gamma, epsilon, step_size, steps, input_range, seed):
    """The settings of `AWPModel`, checked and normalised, in that order."""
    checked = (
        checks.non_negative("gamma", gamma),
        checks.non_negative("epsilon", epsilon),
        checks.non_negative("step_size", step_size),
        checks.count("steps", steps, minimum=0),
        _check_range(input_range),
    )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"`seed` must be an int. Received: seed={seed!r}")
    return checked + (seed,)


def _check_range(input_range):
    if input_range is None:
        return None
    try:
        low, high = (float(v) for v in input_range)
    except (TypeError, ValueError):
        low = high = np.nan
    if not low < high:
        raise ValueError(
            f"`input_range` must be a pair (low, high) with low < high, or None. "
            f"Received: input_range={input_range!r}"
        )
    return (low, high)
