"""Monte Carlo drift evaluation: score many simulated chips with one compiled pass.

A sweep evaluates a model on ``chips`` simulated chips for each value of one
device-noise parameter (by default the drift sigma). Everything happens on a
private device copy of the model, so the caller's model and weights are never
touched. The forward pass is compiled once: chips and parameter values are
*inputs* of the compiled function (chip seeds mapped onto the ReRAM layers'
``chip_seed`` variables through a `keras.StatelessScope`, parameter values
assigned to ``device_params``), so nothing retraces, noise is sampled inside
the graph, and the metric is accumulated inside the graph too.

Chip ``c`` at value index ``v`` is chip seed
``SeedSequence([seed, v, c])``: every value gets its own independent chips and
the same seed reproduces a sweep bit for bit. The realization equals
``bayesft_keras.resample(model, chip_seed)``, so any chip of a report can be
rebuilt by hand. A sweep over a *time* parameter (``t`` of the device physics
models) reads the same chips at every value instead (those of value index 0):
a chip is programmed once and read at every time.

Chip-fixed noise and read noise stay apart: a chip's realization is a
function of its chip seed only, while read noise (`ReadNoise`, ADC noise) is
drawn per forward pass, from seeds that depend on the chip and on the batch,
so that every batch of every chip sees fresh read noise and a report is still
reproducible.
"""

import weakref

import keras
import numpy as np
from keras import ops

from bayesft_keras.device import chip as chip_lib
from bayesft_keras.device import noise as noise_lib
from bayesft_keras.device import periphery as periphery_lib
from bayesft_keras.device import quantization
from bayesft_keras.evaluation import metrics as metrics_lib
from bayesft_keras.evaluation.backend import compile_forward
from bayesft_keras.evaluation.backend import map_chips
from bayesft_keras.evaluation import progress as progress_lib
from bayesft_keras.evaluation import validation
from bayesft_keras.evaluation.report import DriftReport
from bayesft_keras.utils import checks
from bayesft_keras.device.layers import REPLACEMENTS
from bayesft_keras.device.layers.device_layer import DeviceLayerMixin

# The paper's robustness curves: sigma = 0, 0.05, ..., 1.5, 20 chips each.
DEFAULT_SIGMAS = tuple(np.round(np.linspace(0.0, 1.5, 31), 10).tolist())
DEFAULT_CHIPS = 20
# Examples per forward pass when the caller does not choose.
DEFAULT_BATCH_SIZE = 2048
# Chip seeds stay below 2**30, like `bayesft_keras.device.chip`'s.
_SEED_MASK = 0x3FFFFFFF


def chip_seed_grid(seed, num_values, chips):
    """The chip seeds of a sweep: an int array of shape ``(num_values, chips)``.

    Entry ``[v, c]`` is derived from ``SeedSequence([seed, v, c])``, so chips
    are independent across values and across chips.
    """
    seed = checks.seed(seed)
    grid = np.empty((num_values, chips), dtype="int64")
    for v in range(num_values):
        for c in range(chips):
            grid[v, c] = np.random.SeedSequence([seed, v, c]).generate_state(1)[0] & _SEED_MASK
    return grid


class DriftEvaluator:
    """Scores simulated chips of a model on fixed data with one compiled forward pass.

    The evaluator owns a device copy of ``model``; ``model`` itself is never
    modified. A plain Keras model is converted (`Dense`, `Conv1D`, `Conv2D`,
    `DepthwiseConv2D` become ReRAM layers with ``noise`` and ``bits``); a
    model that already has ReRAM layers keeps their device settings.

    Args:
        model: a built Sequential or Functional `keras.Model` with one input
            and one output.
        noise: the device noise model to evaluate with (`bayesft_keras.device.noise`).
            None: the model's own noise if its ReRAM layers have one, else
            `LogNormalDrift()`. Given: every ReRAM layer uses it.
        bits: weight precision of the device copy (None keeps the model's).
        metric: "accuracy", a Keras metric name or instance, or a callable
            ``(y_true, y_pred) -> scalar`` (called on the host with all
            predictions as NumPy arrays).
        batch_size: examples per forward pass (default: all, up to 2048).
        chips_per_pass: how many chips the compiled pass may run at once
            (TensorFlow; all chips of a value go through one call). Default:
            4, 2 or 1, as many as keep their activations within 512 MiB.
        jit_compile: TensorFlow backend only: compile the pass with XLA.
        periphery: a `bayesft_keras.device.periphery.Periphery` for every ReRAM
            layer (None keeps the model's).
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
    ):
        validation.check_model(model)
        self.model, self._weight_pairs = _device_copy(
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
        self.metric = None
        self._compiled = None
        self._data_key = None

    # -- state -------------------------------------------------------------

    def sync_weights(self):
        """Copies the source model's current weights into the device copy."""
        for source, target in self._weight_pairs:
            target.assign(source.value)

    def set_data(self, x, y):
        """Holds ``(x, y)`` as backend tensors, batched (kept if the same arrays)."""
        if self._data_key is not None and self._data_key[0] is x and self._data_key[1] is y:
            return
        x_np, y_np = validation.check_data(self.model, x, y)
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
        self._output_spec = ((None,) + tuple(output.shape[1:]), output.dtype)
        self._parallel = self.chips_per_pass or _auto_chips_per_pass(self.model, len(self._batches[0][0]))
        # Holding the arrays keeps their identity valid as a cache key.
        self._data_key = (x, y)

    def resolve_param(self, param=None):
        """The parameter to sweep: ``param`` checked, or the noise model's sigma."""
        names = set(self.noise.param_names)
        for layer in self.layers:
            names &= set(layer.noise.param_names)
        if param is None:
            sigmas = sorted(n for n in names if n == "sigma" or n.endswith(".sigma"))
            if len(sigmas) == 1:
                return sigmas[0]
            if len(names) == 1:
                return next(iter(names))
            raise ValueError(
                f"Choose the parameter to sweep: `param` must be one of {sorted(names)} "
                f"(the parameters of {self.noise!r}). Received: param=None"
            )
        if param not in names:
            raise ValueError(
                f"`param` must be a parameter of the device noise {self.noise!r}: one of "
                f"{sorted(names)}. Received: param={param!r}"
            )
        return param

    @property
    def time_params(self):
        """The parameters (of every layer's noise) that are a time since programming."""
        names = set(self.noise.time_params)
        for layer in self.layers:
            names &= set(layer.noise.time_params)
        return sorted(names)

    def check_values(self, param, values):
        """Validates sweep ``values`` of ``param`` against every layer's noise model."""
        values = validation.check_values(values)
        for layer in self.layers:
            for value in values:
                layer.noise.with_params(**{param: value})
        return values

    def set_param(self, param, value):
        """Sets noise parameter ``param`` to ``value`` in every ReRAM layer (no retrace)."""
        chip_lib.set_noise_params(self.model, **{param: value})

    # -- scoring -------------------------------------------------------------

    def clean_metric(self):
        """The metric with device noise off (quantization, if any, stays)."""
        return self._score(np.zeros((1, len(self.layers), 2), "int32"), gain=0.0)[0]

    def chip_metrics(self, chip_seeds):
        """The metric of each chip in ``chip_seeds`` at the current parameter values."""
        chip_seeds = [int(s) for s in np.asarray(chip_seeds).reshape(-1)]
        layer_seeds = np.stack(
            [np.stack(chip_lib.layer_seeds(s, len(self.layers))) for s in chip_seeds]
        )
        return np.asarray(self._score(layer_seeds, gain=1.0), dtype="float64")

    def sweep(self, param, values, chip_seeds, on_progress=None):
        """Metrics of shape ``(len(values), chips)``: row ``v`` uses ``chip_seeds[v]``.

        ``on_progress(n)`` is called after each value with its number of chips.
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

    def _score(self, layer_seeds, gain):
        """Scores chips given their per-layer seeds, shape (chips, layers, 2)."""
        if self.metric is None:
            raise ValueError("No data: call `set_data(x, y)` first.")
        run = self._forward()
        chips = len(layer_seeds)
        reads = chip_lib.read_seed_base(np.asarray(layer_seeds)[:, self._read_index].reshape(chips, -1, 2))
        reads = ops.convert_to_tensor(reads, dtype="int32")
        seeds = ops.convert_to_tensor(layer_seeds, dtype="int32")
        gain = ops.convert_to_tensor(gain, dtype="float32")

        def batch_index(b):
            return ops.convert_to_tensor(b * chip_lib.READ_STRIDE, dtype="int32")

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

    def _forward(self):
        if self._compiled is not None:
            return self._compiled
        model, metric, parallel = self.model, self.metric, self._parallel
        seed_variables = [layer.chip_seed for layer in self.layers]
        gain_variables = [layer.noise_enabled for layer in self.layers]
        read_variables = [self.layers[i].read_seed for i in self._read_index]
        output_spec = self._output_spec

        def forward(variable_mapping, seeds, reads, gain, states, x, y, batch):
            offset = ops.stack([ops.zeros_like(batch), batch])

            def one_chip(elems):
                seed, read, state = elems
                mapping = list(variable_mapping)
                mapping += [(v, seed[i]) for i, v in enumerate(seed_variables)]
                mapping += [(v, gain) for v in gain_variables]
                mapping += [(v, read[i] + offset) for i, v in enumerate(read_variables)]
                with keras.StatelessScope(state_mapping=mapping):
                    y_pred = model(x, training=False)
                return metric.update(state, y, y_pred) if metric.in_graph else y_pred

            if metric.in_graph:
                specs = [(tuple(s.shape[1:]), s.dtype) for s in states]
            else:
                specs = output_spec
            return map_chips(one_chip, (seeds, reads, states), specs, parallel=parallel)

        self._compiled = compile_forward(
            forward, model, seed_variables + gain_variables + read_variables, jit_compile=self.jit_compile
        )
        return self._compiled


def evaluate_drift(
    model,
    data,
    sigmas=None,
    chips=DEFAULT_CHIPS,
    metric="accuracy",
    seed=0,
    *,
    noise=None,
    param=None,
    values=None,
    bits=None,
    threshold=None,
    batch_size=None,
    chips_per_pass=None,
    jit_compile=False,
    name=None,
    dataset=None,
    progress=True,
    periphery=None,
):
    """Evaluates ``model`` on simulated drifted chips across a parameter sweep.

    For each value of the swept device parameter (by default the drift sigma,
    0 to 1.5 in 31 steps as in the BayesFT paper) ``chips`` independent chips
    are drawn and scored; the report keeps every chip's metric, so mean,
    spread, percentiles and yield can all be read from it.

    Args:
        model: a built Sequential or Functional `keras.Model`: plain Keras
            (converted internally) or with ReRAM layers (their device settings
            are kept). Never modified.
        data: ``(x, y)`` arrays, or a `bayesft_keras.data.Dataset` (its test
            split is used).
        sigmas: sigma values to sweep (shorthand for ``values`` when the swept
            parameter is a sigma). Default: 0, 0.05, ..., 1.5.
        chips: chips drawn per value, >= 1.
        metric: "accuracy" (default), a Keras metric name or instance, or a
            callable ``(y_true, y_pred) -> scalar`` on NumPy arrays.
        seed: non-negative int; the same seed gives the same report.
        noise: device noise model to use (default: the model's own, else
            `LogNormalDrift`).
        param: the noise parameter to sweep, e.g. "sigma" or "p_low" (default:
            the sigma of the noise model).
        values: the parameter values to sweep (required for non-sigma params).
        bits: device weight precision (None keeps the model's).
        threshold: yield threshold: the report's yield is the fraction of chips
            whose metric is at or above it.
        batch_size: examples per forward pass (default: all, up to 2048).
        chips_per_pass: how many chips may run at once (default: up to 4,
            within an activation memory budget).
        jit_compile: TensorFlow only: compile with XLA.
        name: the model's label in the report (default: ``model.name``).
        dataset: the data's label in the report.
        progress: True shows a progress bar; a callable ``(done, total)`` is
            called after every value with the number of chips done; False
            is silent.
        periphery: a `bayesft_keras.device.periphery.Periphery` (tiles, ADC, drift
            compensation) for every ReRAM layer; None keeps the model's.

    A time parameter (e.g. ``param="t", values=[1, 3600, 86400, 3.15e7]``
    with `bayesft_keras.device.physics.PCMLikeNoise`) reads the same chips at every
    value: one programmed chip per chip index, read at every time.

    Returns:
        A `DriftReport`.
    """
    chips = checks.positive_int("chips", chips)
    seed = checks.seed(seed)
    threshold = validation.check_threshold(threshold)
    if sigmas is not None and values is not None:
        raise ValueError("Give `sigmas` or `values`, not both.")
    x, y, data_name = validation.unpack_data(data)
    validation.check_model(model)
    validation.check_data(model, x, y)
    evaluator = DriftEvaluator(
        model,
        noise=noise,
        bits=bits,
        metric=metric,
        batch_size=batch_size,
        chips_per_pass=chips_per_pass,
        jit_compile=jit_compile,
        periphery=periphery,
    )
    param = evaluator.resolve_param(param)
    if sigmas is not None:
        if not validation.is_sigma(param):
            raise ValueError(
                f"`sigmas` sweeps a sigma, but the swept parameter is {param!r}: pass "
                f"`values=` instead. Received: sigmas={sigmas!r}"
            )
        values = sigmas
    if values is None:
        if not validation.is_sigma(param):
            raise ValueError(
                f"`values` is required to sweep {param!r} (the default covers sigma only)."
            )
        values = DEFAULT_SIGMAS
    values = evaluator.check_values(param, values)
    evaluator.set_data(x, y)
    if param in evaluator.time_params:
        grid = np.repeat(chip_seed_grid(seed, 1, chips), len(values), axis=0)
    else:
        grid = chip_seed_grid(seed, len(values), chips)
    with progress_lib.progress(progress, len(values) * chips, f"{name or model.name}: {param} sweep") as advance:
        clean = evaluator.clean_metric()
        per_chip = evaluator.sweep(param, values, grid, on_progress=advance)
    return DriftReport(
        values=np.asarray(values, dtype="float64"),
        chip_metrics=per_chip,
        clean=clean,
        param=param,
        metric=evaluator.metric.name,
        model_name=name or model.name,
        seed=seed,
        noise=noise_lib.serialize(evaluator.noise),
        bits=evaluator.layers[0].bits,
        threshold=threshold,
        num_examples=evaluator.num_examples,
        dataset=dataset or data_name,
        chip_seeds=grid,
    )


# Evaluators cached per source model for `drift_score`; dropped with the model.
_EVALUATORS = weakref.WeakKeyDictionary()


def drift_score(
    model,
    x,
    y,
    sigma=1.5,
    chips=30,
    seed=0,
    metric="accuracy",
    *,
    noise=None,
    param=None,
    bits=None,
    batch_size=None,
    periphery=None,
):
    """Mean metric over ``chips`` simulated chips at one parameter value.

    The BayesFT objective (mean accuracy at sigma 1.5 over 30 chips for
    LeNet-5). The compiled evaluator is cached per model and reused by later
    calls; the model's current weights are copied in at every call, so the
    score follows a model that keeps training.

    Args:
        model: a built `keras.Model` (plain or with ReRAM layers; not modified).
        x, y: the evaluation data.
        sigma: the value of the swept parameter (default: the drift sigma).
        chips: number of chips, >= 1.
        seed: the chips are those of value index 0 of `evaluate_drift` with the
            same seed.
        metric, noise, param, bits, batch_size, periphery: as in `evaluate_drift`.
    """
    chips = checks.positive_int("chips", chips)
    seed = checks.seed(seed)
    key = (_noise_key(noise), bits, _metric_key(metric), batch_size, repr(periphery_lib.get(periphery)))
    per_model = _EVALUATORS.setdefault(model, {})
    evaluator = per_model.get(key)
    if evaluator is None:
        evaluator = DriftEvaluator(
            model, noise=noise, bits=bits, metric=metric, batch_size=batch_size, periphery=periphery
        )
        per_model[key] = evaluator
    else:
        evaluator.sync_weights()
    param = evaluator.resolve_param(param)
    (value,) = evaluator.check_values(param, [sigma])
    evaluator.set_data(x, y)
    seeds = chip_seed_grid(seed, 1, chips)[0]
    scores = evaluator.sweep(param, [value], seeds[None, :])
    return float(np.mean(scores))


# -- helpers -------------------------------------------------------------------


def _device_copy(model, noise, bits, periphery=None):
    """Clones ``model`` onto the device; returns the clone and (source, copy) weight pairs."""
    bits = quantization.validate_bits(bits, "bits")
    all_layers = list(model._flatten_layers(include_self=False, recursive=True))
    device = [l for l in all_layers if isinstance(l, DeviceLayerMixin)]
    own_noise = next((l.noise for l in device if l.noise is not None), None)
    target = noise or own_noise or noise_lib.LogNormalDrift()
    layer_pairs = []

    def clone_layer(layer):
        config = layer.get_config()
        if isinstance(layer, DeviceLayerMixin):
            cls = type(layer)
            if noise is not None or own_noise is None:
                config["noise"] = noise_lib.serialize(target)
        elif not device and type(layer) in REPLACEMENTS:
            cls = REPLACEMENTS[type(layer)]
            config["noise"] = noise_lib.serialize(target)
        else:
            cls = type(layer)
        if bits is not None and issubclass(cls, DeviceLayerMixin):
            config["bits"] = bits
        if periphery is not None and issubclass(cls, DeviceLayerMixin):
            config["periphery"] = periphery_lib.serialize(periphery)
        new = cls.from_config(config)
        layer_pairs.append((layer, new))
        return new

    try:
        clone = keras.models.clone_model(model, clone_function=clone_layer, recursive=True)
    except ValueError as e:
        raise ValueError(
            "Only Sequential and Functional models (nested ones too) can be evaluated; "
            f"{model.name!r} could not be cloned: {e}"
        ) from e
    skip = set(DeviceLayerMixin.DEVICE_VARIABLES)
    weight_pairs = []
    for old, new in layer_pairs:
        old_weights = {_leaf(v): v for v in old.weights if _leaf(v) not in skip}
        for v in new.weights:
            if _leaf(v) in skip:
                continue
            if _leaf(v) not in old_weights:
                raise ValueError(
                    f"Cannot copy weight {_leaf(v)!r} of layer {new.name!r}: the source "
                    f"layer {old.name!r} has no weight of that name."
                )
            weight_pairs.append((old_weights[_leaf(v)], v))
    for source, target_variable in weight_pairs:
        target_variable.assign(source.value)
    return clone, weight_pairs


# Activation memory that several chips of one pass may take together.
_CHIP_GROUP_BYTES = 512 * 2**20


def _auto_chips_per_pass(model, batch_size):
    """4, 2 or 1 chips at once: as many as keep their activations within budget.

    Independent chips that run at once overlap on the CPU cores, which makes
    a chip cheaper than a pass of its own.
    """
    floats = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError, TypeError):
            continue
        floats += int(np.prod([d for d in shape[1:] if d is not None]))
    per_chip = 4 * batch_size * max(floats, 1)
    for group in (4, 2):
        if group * per_chip <= _CHIP_GROUP_BYTES:
            return group
    return 1


def _signature(metric):
    return (type(metric), metric.name, getattr(metric, "kind", None))


def _leaf(variable):
    return variable.path.split("/")[-1]


def _noise_key(noise):
    noise = noise_lib.get(noise)
    return None if noise is None else repr(noise_lib.serialize(noise))


def _metric_key(metric):
    if isinstance(metric, str):
        return metric
    if isinstance(metric, keras.metrics.Metric):
        return (type(metric).__name__, repr(metric.get_config()))
    return metric
