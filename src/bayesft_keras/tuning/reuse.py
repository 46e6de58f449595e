"""One compiled model per search: each trial resets a shared model instead of building and tracing anew.

Every trial of a BayesFT search on a zoo architecture has the same layers: only
the dropout rates differ, and at evaluation dropout is off. Building, compiling
and tracing a model, its train step and its drift evaluator per trial costs more
than training a small network (`benchmarks/RESULTS.md`: 85 % of a LeNet-5 trial
on a GPU with JAX). So `SharedTrialModel` keeps one model, one traced train step
and one `DriftEvaluator` for the whole search, and a trial

1. builds a fresh model under the trial's seed (no compile, no trace) and copies
   its variables, weights and dropout seed states, into the shared model: the
   trial starts where a freshly built model would;
2. takes the rates from it too: `SiteDropout` holds its rate in a variable that
   the traced step reads;
3. returns the optimizer to its freshly built state (step 0, zero moments);

then trains the shared model with the train step traced in the first trial, and
scores it with the evaluator compiled in the first trial.
"""

from keras import ops

from bayesft_keras.architectures import SiteDropout
from bayesft_keras.device.walk import walk_layers
from bayesft_keras.evaluation.evaluator import DriftEvaluator

COMPILE_ONCE_CHOICES = (True, False, "auto")


def check_compile_once(value):
    if not (value is True or value is False or value == "auto"):
        raise ValueError(
            f"`compile_once` must be one of {list(COMPILE_ONCE_CHOICES)}. Received: compile_once={value!r}"
        )
    return value


def reuse_blocker(hypermodel):
    """Why the trials of `hypermodel` cannot share one compiled model, or None when they can."""
    blocker = getattr(hypermodel, "reuse_blocker", None)
    if blocker is None:
        return f"{type(hypermodel).__name__} does not say that its trials share one architecture"
    return blocker()


class SharedTrialModel:
    """The model, train step and drift evaluator that every trial of a search shares.

    Args:
        hypermodel: a hypermodel whose `reuse_blocker()` is None: every trial's
            `build(hp)` gives the same layers and variables.
    """

    def __init__(self, hypermodel):
        self.hypermodel = hypermodel
        self.model = None
        self.evaluator = None

    def model_for(self, hp):
        """The shared model, set to the state `hypermodel.build(hp)` gives a new model.

        Call it under the trial's random seed, as a fresh build would be.
        """
        fresh = self.hypermodel.build(hp)
        if self.model is None:
            self.model = fresh
            return fresh
        copy_state(fresh, self.model)
        reset_optimizer(self.model.optimizer)
        return self.model

    def adopt(self, model):
        """Takes `model` (from `hypermodel.build`) as the shared model if there is none yet.

        Its optimizer is built, so that a trial saved from it holds a whole (fresh)
        optimizer state: a group trains its copies with an optimizer of its own.
        """
        if self.model is None:
            self.model = model
            if getattr(model, "optimizer", None) is not None:
                model.optimizer.build(model.trainable_variables)

    def model_like(self, trained):
        """The shared model, holding the state of `trained` (a copy trained in a group)."""
        copy_state(trained, self.model)
        return self.model

    def evaluator_for(self, model, metric):
        """The search's `DriftEvaluator` of the shared `model` (made at the first call)."""
        if model is not self.model:
            raise ValueError("`evaluator_for` scores the shared model only.")
        if self.evaluator is None:
            self.evaluator = DriftEvaluator(model, metric=metric)
        return self.evaluator


def copy_state(source, target):
    """Assigns every variable of `source` (weights, rates, seed states) to the same one of `target`."""
    pairs = list(zip(source.variables, target.variables))
    if len(source.variables) != len(target.variables) or any(
        _leaf(s.path) != _leaf(t.path) or tuple(s.shape) != tuple(t.shape) for s, t in pairs
    ):
        raise ValueError(
            f"The hypermodel built a model whose variables differ from the shared model's "
            f"({len(source.variables)} against {len(target.variables)}): its trials cannot share "
            "one compiled model. Pass `compile_once=False`."
        )
    for s, t in pairs:
        # A copy: JAX's train step donates its variables' buffers, and one source may fill
        # several targets (a group's empty places).
        t.assign(ops.copy(s.value))
    for s, t in zip(walk_layers(source), walk_layers(target)):
        if isinstance(t, SiteDropout):
            t.rate = s.rate  # the config's value; the variable came with the others


def reset_optimizer(optimizer):
    """Returns a built optimizer to its freshly built state: step 0 and zero moments.

    A constant learning rate, the one variable of a fresh optimizer that is not zero,
    is kept.
    """
    for variable in optimizer.variables:
        if _leaf(variable.path) != "learning_rate":
            variable.assign(ops.zeros(variable.shape, variable.dtype))


def _leaf(path):
    return path.rsplit("/", 1)[-1]
