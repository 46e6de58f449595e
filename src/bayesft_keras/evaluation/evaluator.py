"""`DriftEvaluator`: scores simulated chips of a model with one compiled forward pass.

The evaluator works on a private device copy of the model
(`bayesft_keras.device.convert.device_copy`), so the caller's model and
weights are never touched. The forward pass is compiled once
(`bayesft_keras.evaluation.backend`): chips and parameter values are *inputs*
of the compiled function (chip seeds mapped onto the ReRAM layers'
`chip_seed` variables through a `keras.StatelessScope`, parameter values
assigned to `device_params`), so nothing retraces, noise is sampled inside
the graph (by the layers: `bayesft_keras.device.sampling`), and the metric is
accumulated inside the graph too.

Where the model allows it (one chain of layers, ReRAM layers without read
noise or periphery), a group of chips runs *stacked* in one pass instead
(`bayesft_keras.evaluation.stacked`; by default on TensorFlow): each chip's
weights are still drawn from its own seed, so the metrics are those of the
per-chip pass up to float rounding.

Chip-fixed noise and read noise stay apart: a chip's realization is a
function of its chip seed only, while read noise (`ReadNoise`, ADC noise) is
drawn per forward pass, from seeds that depend on the chip and on the batch
(`bayesft_keras.device.seeds`), so that every batch of every chip sees fresh
read noise and a report is still reproducible.
"""

import keras
import numpy as np
from keras import ops

from bayesft_keras.device import chip as chip_lib
from bayesft_keras.device import convert as convert_lib
from bayesft_keras.device import periphery as periphery_lib
from bayesft_keras.device import noise as noise_lib
from bayesft_keras.device import sampling
from bayesft_keras.device import seeds as seeds_lib
from bayesft_keras.evaluation import metrics as metrics_lib
from bayesft_keras.evaluation import validation
from bayesft_keras.evaluation import stacked as stacked_lib
from bayesft_keras.evaluation.backend import auto_chips_per_pass
from bayesft_keras.evaluation.backend import auto_stacked_chips
from bayesft_keras.evaluation.backend import stacked_default
from bayesft_keras.evaluation.backend import compile_forward
from bayesft_keras.evaluation.backend import map_chips
from bayesft_keras.utils import checks
from bayesft_keras.utils import values as values_lib

# Examples per forward pass when the caller does not choose.
DEFAULT_BATCH_SIZE = 2048


class DriftEvaluator:
    """Scores simulated chips of a model on fixed data with one compiled forward pass.

    The evaluator owns a device copy of `model`; `model` itself is never
    modified. A plain Keras model is converted (`Dense`, `Conv1D`, `Conv2D`,
    `DepthwiseConv2D` become ReRAM layers with `noise` and `bits`); a
    model that already has ReRAM layers keeps their device settings.

    Args:
        model: a built Sequential or Functional `keras.Model` with one input
            and one output.
        noise: the device noise model to evaluate with (`bayesft_keras.device.noise`).
            None: the model's own noise if its ReRAM layers have one, else
            `LogNormalDrift()`. Given: every ReRAM layer uses it.
        bits: weight precision of the device copy (None keeps the model's).
        metric: "accuracy", a Keras metric name or instance, or a callable
            `(y_true, y_pred) -> scalar` (called on the host with all
            predictions as NumPy arrays).
        batch_size: examples per forward pass (default: all, up to 2048).
        chips_per_pass: how many chips the compiled pass may run at once
            (TensorFlow; all chips of a value go through one call). Default:
            4, 2 or 1, as many as keep their activations within 512 MiB.
        jit_compile: TensorFlow backend only: compile the pass with XLA.
        periphery: a `bayesft_keras.device.periphery.Periphery` for every ReRAM
            layer (None keeps the model's).
        stacked: run the chips of a pass side by side in one forward pass
            (`bayesft_keras.evaluation.stacked`): the same metrics up to
            float rounding, several times faster on a CPU. None: on the
            TensorFlow backend whenever the model allows it; True: require
            it (on any backend); False: one forward pass per chip.
    """

    def __init__(
        self,
        model,
        noise=None,
        bits=None,
        metric="accuracy",
        batch_size=None,
        chips_per_pass=None,
        jit_compile=False,
        periphery=None,
        stacked=None,
    ):
        validation.check_model(model)
        self.model, self._weight_pairs = convert_lib.device_copy(
            model, noise_lib.get(noise), bits, periphery_lib.get(periphery)
        )
        self.layers = chip_lib.device_layers(self.model)
        if not self.layers:
            raise ValueError(
                f"Model {model.name!r} has no layer that runs on the device: it needs a "
                "Dense, Conv1D, Conv2D or DepthwiseConv2D layer (or a ReRAM layer)."
            )
        self.noise = self.layers[0].noise
        # Layers that draw noise on every read, and their index in `layers`.
        self._read_index = [i for i, layer in enumerate(self.layers) if layer.has_read_noise]
        self.metric_spec = metric
        self.batch_size = checks.positive_int("batch_size", batch_size, allow_none=True)
        self.chips_per_pass = checks.positive_int("chips_per_pass", chips_per_pass, allow_none=True)
        self.jit_compile = bool(jit_compile)
        self._plan = _stacked_plan(self.model, self.layers, stacked)
        self.metric = None
        self._compiled = None
        self._stacked_compiled = {}
        self._data_key = None

    # -- state -------------------------------------------------------------

    def sync_weights(self):
        """Copies the source model's current weights into the device copy."""
        for source, target in self._weight_pairs:
            target.assign(source.value)

    def set_data(self, x, y):
        """Holds `(x, y)` as backend tensors, batched (kept if the same arrays)."""
        if self._data_key is not None and self._data_key[0] is x and self._data_key[1] is y:
            return
        x_np, y_np = validation.check_data(self.model, x, y, metric=self.metric_spec)
        n = len(x_np)
        batch_size = self.batch_size or min(n, DEFAULT_BATCH_SIZE)
        self._batches = [
            (ops.convert_to_tensor(x_np[i : i + batch_size]), ops.convert_to_tensor(y_np[i : i + batch_size]))
            for i in range(0, n, batch_size)
        ]
        self._y_host = y_np
        self.num_examples = n
        output = self.model(self._batches[0][0][:1], training=False)
        if not hasattr(output, "shape"):
            raise ValueError(
                f"Model {self.model.name!r} has several outputs; drift evaluation needs one."
            )
        metric = metrics_lib.get(self.metric_spec, y_np.shape, tuple(output.shape))
        if self.metric is None or _signature(metric) != _signature(self.metric):
            # The compiled pass traces the metric: a different one needs a new pass.
            self.metric = metric
            self._compiled = None
            self._stacked_compiled = {}
        self._output_spec = ((None,) + tuple(output.shape[1:]), output.dtype)
        examples = len(self._batches[0][0])
        if self._plan is not None:
            self._parallel = self.chips_per_pass or auto_stacked_chips(self.model, examples)
        else:
            self._parallel = self.chips_per_pass or auto_chips_per_pass(self.model, examples)
        # Holding the arrays keeps their identity valid as a cache key.
        self._data_key = (x, y)

    def resolve_param(self, param=None):
        """The parameter to sweep: `param` checked, or the noise model's sigma."""
        names = set(self.noise.param_names)
        for layer in self.layers:
            names &= set(layer.noise.param_names)
        return values_lib.sweep_param(names, param, self.noise)

    @property
    def time_params(self):
        """The parameters (of every layer's noise) that are a time since programming."""
        names = set(self.noise.time_params)
        for layer in self.layers:
            names &= set(layer.noise.time_params)
        return sorted(names)

    def check_values(self, param, values):
        """Validates sweep `values` of `param` against every layer's noise model."""
        values = validation.check_values(values)
        for layer in self.layers:
            for value in values:
                layer.noise.with_params(**{param: value})
        return values

    def set_param(self, param, value):
        """Sets noise parameter `param` to `value` in every ReRAM layer (no retrace)."""
        chip_lib.set_noise_params(self.model, **{param: value})

    # -- scoring -------------------------------------------------------------

    def clean_metric(self):
        """The metric with device noise off (quantization, if any, stays)."""
        return self._score(np.zeros((1, len(self.layers), 2), "int32"), gain=0.0)[0]

    def chip_metrics(self, chip_seeds):
        """The metric of each chip in `chip_seeds` at the current parameter values."""
        chip_seeds = [int(s) for s in np.asarray(chip_seeds).reshape(-1)]
        layer_seeds = np.stack(
            [np.stack(seeds_lib.layer_seeds(s, len(self.layers))) for s in chip_seeds]
        )
        return np.asarray(self._score(layer_seeds, gain=1.0), dtype="float64")

    def sweep(self, param, values, chip_seeds, on_progress=None):
        """Metrics of shape `(len(values), chips)`: row `v` uses `chip_seeds[v]`.

        `on_progress(n)` is called after each value with its number of chips.
        """
        values = self.check_values(param, values)
        chip_seeds = np.asarray(chip_seeds)
        if chip_seeds.ndim != 2 or len(chip_seeds) != len(values):
            raise ValueError(
                "`chip_seeds` must have shape (len(values), chips). "
                f"Received shape {chip_seeds.shape} for {len(values)} values."
            )
        base = [layer.noise for layer in self.layers]
        try:
            rows = []
            for value, seeds in zip(values, chip_seeds):
                self.set_param(param, value)
                rows.append(self.chip_metrics(seeds))
                if on_progress is not None:
                    on_progress(len(seeds))
        finally:
            for layer, noise in zip(self.layers, base):
                layer.noise = noise
                layer.device_params.assign(np.asarray(noise.params(), dtype="float32"))
        return np.stack(rows)

    @property
    def stacked(self):
        """Whether the chips of a pass run stacked in one forward pass (`bayesft_keras.evaluation.stacked`)."""
        return self._plan is not None

    def _score(self, layer_seeds, gain):
        """Scores chips given their per-layer seeds, shape (chips, layers, 2)."""
        if self.metric is None:
            raise ValueError("No data: call `set_data(x, y)` first.")
        if self._plan is not None:
            return self._score_stacked(np.asarray(layer_seeds), gain)
        run = self._forward()
        chips = len(layer_seeds)
        reads = seeds_lib.read_seed_base(np.asarray(layer_seeds)[:, self._read_index].reshape(chips, -1, 2))
        reads = ops.convert_to_tensor(reads, dtype="int32")
        seeds = ops.convert_to_tensor(layer_seeds, dtype="int32")
        gain = ops.convert_to_tensor(gain, dtype="float32")

        def batch_index(b):
            return ops.convert_to_tensor(b * seeds_lib.READ_STRIDE, dtype="int32")

        if not self.metric.in_graph:
            outputs = [
                ops.convert_to_numpy(run(seeds, reads, gain, [], x, y, batch_index(b)))
                for b, (x, y) in enumerate(self._batches)
            ]
            predictions = np.concatenate(outputs, axis=1)
            return [self.metric.result(self._y_host, p) for p in predictions]
        states = [
            ops.convert_to_tensor(np.repeat(s[None], chips, axis=0)) for s in self.metric.initial_state()
        ]
        for b, (x, y) in enumerate(self._batches):
            states = run(seeds, reads, gain, states, x, y, batch_index(b))
        return self.metric.results(states)

    def _score_stacked(self, layer_seeds, gain):
        """`_score` with the chips in groups of at most `_parallel`, each group one stacked pass."""
        gain = ops.convert_to_tensor(gain, dtype="float32")
        results = []
        for group in _groups(len(layer_seeds), self._parallel):
            seeds = ops.convert_to_tensor(layer_seeds[group], dtype="int32")
            run = self._stacked_forward(len(group))
            if not self.metric.in_graph:
                outputs = [ops.convert_to_numpy(run(seeds, gain, [], x, y)) for x, y in self._batches]
                predictions = np.concatenate(outputs, axis=1)
                results += [self.metric.result(self._y_host, p) for p in predictions]
                continue
            states = [
                ops.convert_to_tensor(np.repeat(s[None], len(group), axis=0)) for s in self.metric.initial_state()
            ]
            for x, y in self._batches:
                states = run(seeds, gain, states, x, y)
            results += list(self.metric.results(states))
        return results

    def _stacked_forward(self, chips):
        """The compiled stacked pass of `chips` chips (one trace per group size)."""
        if chips in self._stacked_compiled:
            return self._stacked_compiled[chips]
        plan, metric = self._plan, self.metric

        layers, specs = stacked_lib.chip_specs(plan)
        parallel = self._parallel

        def forward(variable_mapping, seeds, gain, states, x, y):
            def one_chip(chip_seeds):
                # Each chip's weights as its own pass draws them (`chip_weights`): from its seed only.
                weights = []
                for index, layer, with_bias in layers:
                    mapping = list(variable_mapping)
                    mapping += [(layer.chip_seed, chip_seeds[index]), (layer.noise_enabled, gain)]
                    with keras.StatelessScope(state_mapping=mapping):
                        kernel, bias = layer.chip_weights()
                    weights += [kernel, bias] if with_bias else [kernel]
                return weights

            stacked = map_chips(one_chip, seeds, specs, parallel=parallel)
            # The chip count as a static size, for the reshapes of the stacked pass.
            stacked = [ops.reshape(w, (chips,) + spec[0]) for w, spec in zip(stacked, specs)]
            weights, i = {}, 0
            for index, _, with_bias in layers:
                weights[index] = (stacked[i], stacked[i + 1] if with_bias else None)
                i += 2 if with_bias else 1
            with keras.StatelessScope(state_mapping=list(variable_mapping)):
                outputs = stacked_lib.stacked_forward(plan, x, weights, chips)
                # (chips, examples, ...): one chip's predictions after another.
                rank = len(outputs.shape)
                predictions = ops.transpose(outputs, [rank - 2] + list(range(rank - 2)) + [rank - 1])
                if not metric.in_graph:
                    return predictions
                return map_chips(
                    lambda e: metric.update(e[0], y, e[1]),
                    (states, predictions),
                    [(tuple(s.shape[1:]), s.dtype) for s in states],
                    parallel=parallel,
                )

        own = sampling.chip_variables(self.layers, [])
        run = compile_forward(forward, self.model, own, jit_compile=self.jit_compile)
        self._stacked_compiled[chips] = run
        return run

    def _forward(self):
        if self._compiled is not None:
            return self._compiled
        model, metric, parallel = self.model, self.metric, self._parallel
        layers = self.layers
        read_layers = [self.layers[i] for i in self._read_index]
        output_spec = self._output_spec

        def forward(variable_mapping, seeds, reads, gain, states, x, y, batch):
            offset = ops.stack([ops.zeros_like(batch), batch])

            def one_chip(elems):
                seed, read, state = elems
                mapping = list(variable_mapping)
                mapping += sampling.chip_mapping(layers, read_layers, seed, read, gain, offset)
                with keras.StatelessScope(state_mapping=mapping):
                    y_pred = model(x, training=False)
                return metric.update(state, y, y_pred) if metric.in_graph else y_pred

            if metric.in_graph:
                specs = [(tuple(s.shape[1:]), s.dtype) for s in states]
            else:
                specs = output_spec
            return map_chips(one_chip, (seeds, reads, states), specs, parallel=parallel)

        self._compiled = compile_forward(
            forward, model, sampling.chip_variables(layers, read_layers), jit_compile=self.jit_compile
        )
        return self._compiled


def _stacked_plan(model, layers, stacked):
    if stacked is not None and not isinstance(stacked, bool):
        raise ValueError(f"`stacked` must be True, False or None. Received: stacked={stacked!r}")
    if stacked is False or (stacked is None and not stacked_default(layers)):
        return None
    plan = stacked_lib.stacked_plan(model, layers)
    if plan is None and stacked:
        raise ValueError(
            f"Model {model.name!r} cannot run its chips stacked (`stacked=True`): it needs one chain of "
            "layers (no branches or nested models), ReRAM layers without read noise, DACs, ADCs or "
            "tiles, and `channels_last`. Received: stacked=True"
        )
    return plan


def _groups(chips, most):
    """`range(chips)` in consecutive groups of at most `most`, as even as possible (few group sizes)."""
    count = -(-chips // most)
    bounds = [round(i * chips / count) for i in range(count + 1)]
    return [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def _signature(metric):
    return (type(metric), metric.name, getattr(metric, "kind", None))
