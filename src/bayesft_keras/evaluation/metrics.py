"""Metrics a drift sweep can score a chip with, in a form a compiled pass can carry.

Every adapter keeps its running state as a list of plain arrays:
`initial_state()` (NumPy, one chip), `update(state, y_true, y_pred) ->
state` (traced into the compiled pass, mapped over chips) and
`results(states) -> [float]` (on the host, from the states of all chips
stacked on a first axis). Keras metrics are
run through their stateless API, so neither the caller's metric object nor any
variable is touched and the same code traces under every backend. A plain
callable cannot be traced in general: it receives all predictions at once as
NumPy arrays.
"""

import keras
import numpy as np
from keras import ops

_ACCURACY_NAMES = ("accuracy", "acc")


def get(metric, y_shape, output_shape):
    """Returns the adapter for `metric` given the label and model output shapes.

    Args:
        metric: "accuracy" (the default; sparse labels, one-hot labels or a
            single sigmoid output), a Keras metric name or instance, or a
            callable `(y_true, y_pred) -> scalar`.
        y_shape: shape of the labels, e.g. `(n,)` or `(n, classes)`.
        output_shape: shape of the model output, batch dimension included.
    """
    if isinstance(metric, str) and metric.lower() in _ACCURACY_NAMES:
        return Accuracy(y_shape, output_shape)
    if isinstance(metric, str):
        try:
            instance = keras.metrics.get(metric)
        except (ValueError, TypeError):
            raise ValueError(
                f"Unknown metric {metric!r}: `metric` must be 'accuracy', a Keras metric "
                "name (e.g. 'sparse_categorical_crossentropy', 'mse'), a "
                "keras.metrics.Metric instance or a callable (y_true, y_pred) -> scalar. "
                f"Received: metric={metric!r}"
            ) from None
        if not isinstance(instance, keras.metrics.Metric):  # a metric function
            instance = keras.metrics.MeanMetricWrapper(instance, name=metric)
        return KerasMetric(instance)
    if isinstance(metric, keras.metrics.Metric):
        return KerasMetric(metric)
    if callable(metric):
        return HostCallable(metric)
    raise ValueError(
        "`metric` must be 'accuracy', a Keras metric name or instance, or a callable "
        f"(y_true, y_pred) -> scalar. Received: metric={metric!r}"
    )


class Accuracy:
    """Fraction of correct predictions, counted exactly in int32 inside the graph.

    Like `compile(metrics=["accuracy"])`: one-hot labels compare arg-maxes,
    integer labels compare with the arg-max, a single output is thresholded
    at 0.5.
    """

    in_graph = True
    name = "accuracy"

    def __init__(self, y_shape, output_shape):
        y_rank, out_rank = len(y_shape), len(output_shape)
        classes = output_shape[-1] if out_rank > 1 else 1
        if classes == 1:
            self.kind = "binary"
        elif y_rank == out_rank and y_shape[-1] == classes:
            self.kind = "one_hot"
        elif y_rank == out_rank - 1 or (y_rank == out_rank and y_shape[-1] == 1):
            self.kind = "sparse"
        else:
            raise ValueError(
                f"Labels of shape {tuple(y_shape)} do not fit model outputs of shape "
                f"{tuple(output_shape)} for 'accuracy': expected class indices (n,) or "
                f"one-hot labels (n, {classes})."
            )

    def initial_state(self):
        return [np.zeros((), "int32"), np.zeros((), "int32")]

    def update(self, state, y_true, y_pred):
        correct, seen = state
        if self.kind == "binary":
            y_pred = ops.reshape(y_pred, (ops.shape(y_pred)[0], -1))[:, 0]
            y_true = ops.reshape(y_true, (ops.shape(y_true)[0], -1))[:, 0]
            hits = ops.equal(y_pred > 0.5, ops.cast(y_true, y_pred.dtype) > 0.5)
        else:
            predicted = ops.argmax(y_pred, axis=-1)
            if self.kind == "one_hot":
                y_true = ops.argmax(y_true, axis=-1)
            else:
                y_true = ops.reshape(y_true, ops.shape(predicted))
            hits = ops.equal(ops.cast(predicted, "int32"), ops.cast(y_true, "int32"))
        count = ops.sum(ops.cast(hits, "int32"))
        return [correct + count, seen + ops.cast(ops.size(hits), "int32")]

    def results(self, states):
        correct, seen = (np.asarray(ops.convert_to_numpy(s)).astype("int64") for s in states)
        return [int(c) / int(n) for c, n in zip(correct, seen)]


class KerasMetric:
    """Any `keras.metrics.Metric`, run statelessly on a private copy."""

    in_graph = True

    def __init__(self, metric):
        # A private copy: the caller's metric keeps its own state.
        self.metric = type(metric).from_config(metric.get_config())
        self.name = self.metric.name
        self._initial = [np.asarray(ops.convert_to_numpy(v.value)) for v in self.metric.variables]

    def initial_state(self):
        return list(self._initial)

    def update(self, state, y_true, y_pred):
        return self.metric.stateless_update_state(list(state), y_true, y_pred)

    def results(self, states):
        states = [np.asarray(ops.convert_to_numpy(s)) for s in states]
        return [
            float(ops.convert_to_numpy(self.metric.stateless_result([s[chip] for s in states])))
            for chip in range(len(states[0]))
        ]


class HostCallable:
    """A callable `(y_true, y_pred) -> scalar` applied to all predictions on the host.

    A per-example result (e.g. a Keras loss function) is averaged.
    """

    in_graph = False

    def __init__(self, fn):
        self.fn = fn
        self.name = getattr(fn, "__name__", type(fn).__name__)

    def result(self, y_true, y_pred):
        value = np.asarray(ops.convert_to_numpy(self.fn(y_true, y_pred)), dtype="float64")
        if value.size == 0:
            raise ValueError(f"Metric {self.name!r} returned an empty result.")
        return float(np.mean(value))
