"""Monte Carlo drift evaluation of Keras 2 (tf_keras) models, with the core's devices and report.

tf_keras layers cannot hold the core's ReRAM state, so a chip is simulated on
a private copy of the model's weights: for each chip, every kernel and bias of
the device layers (Dense, Conv1D, Conv2D, DepthwiseConv2D) is quantized (if
`bits` is set), perturbed by the device noise model and written into the
copy, which is then evaluated. The noise is computed by the core's own noise
models (`bayesft_keras.device.noise`, Keras 3 ops on TensorFlow tensors; `import
keras` is Keras 3 even where `tf.keras` is tf_keras) with the core's
seeding: chip `[v, c]` has seed `chip_seed_grid(seed, ...)[v, c]`, layer
`i` the seed `layer_seeds(chip, n)[i]`, and draws come kernel first, then
bias, exactly as in a ReRAM layer. The same model converted to Keras 3 and
evaluated by `bayesft_keras.evaluation.evaluate_drift` therefore sees the same
chips. The result is the core's `DriftReport` (same JSON / CSV / PNG).

Like the paper's code, every parameter of a device layer drifts (kernel and
bias). Parameters of other layers (e.g. batch normalization) stay exact, as
in the core.
"""

import os

# First: legacy_keras refuses to be imported in a Keras 3 process.
from bayesft_keras.bridge import legacy_keras  # isort: skip

import keras  # noqa: E402  (Keras 3: the core's noise models and quantizer)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

from bayesft_keras.device.chip import layer_seeds  # noqa: E402
from bayesft_keras.device import noise as noise_lib  # noqa: E402
from bayesft_keras.device import quantization  # noqa: E402
from bayesft_keras.evaluation import engine  # noqa: E402
from bayesft_keras.evaluation import metrics as metrics_lib  # noqa: E402
from bayesft_keras.evaluation.report import DriftReport  # noqa: E402
from bayesft_keras.device.seeds import SeedStream  # noqa: E402
from bayesft_keras.bridge import launcher  # noqa: E402
from bayesft_keras.evaluation import progress as progress_lib  # noqa: E402
from bayesft_keras.evaluation import validation  # noqa: E402
from bayesft_keras.utils import checks  # noqa: E402
from bayesft_keras.utils import values as values_lib  # noqa: E402


class _DeviceLayer:
    """One device layer of the private copy: its variables and clean device weights."""

    def __init__(self, layer, bits, per_channel):
        name, channel_axes = legacy_keras.kernel_attribute(layer)
        self.bits = bits
        self.kernel = getattr(layer, name)
        self.bias = layer.bias if getattr(layer, "use_bias", False) else None
        # Quantization does not depend on the chip: done once, by the core's
        # own quantizer.
        self.clean_kernel = tf.constant(
            quantization.quantize_weight(tf.convert_to_tensor(self.kernel), bits, channel_axes, per_channel)
        )
        self.clean_bias = None
        if self.bias is not None:
            self.clean_bias = tf.constant(
                quantization.quantize_weight(tf.convert_to_tensor(self.bias), bits, per_channel=False)
            )


class LegacyChipSimulator:
    """Scores simulated chips of a tf_keras model on fixed data.

    Holds a private copy of `model` (QAT wrappers of
    `bayesft_keras.bridge.tfmot_qat` removed, their precision kept); chips are
    written into the copy's device-layer weights, never into `model`.

    Args:
        model: a built tf_keras Sequential or Functional model, plain or from
            `bayesft_keras.bridge.tfmot_qat.quantize_model`.
        noise: a `bayesft_keras.device.noise` model (default `LogNormalDrift()`).
        bits: device weight precision (None: the QAT precision of each layer,
            else full precision).
        metric: "accuracy", a Keras metric name or instance, or a callable
            `(y_true, y_pred) -> scalar` on NumPy arrays.
        batch_size: examples per forward pass (default: all, up to 2048).
        noisy_bias: whether biases drift too (as every parameter in the paper).
    """

    def __init__(self, model, noise=None, bits=None, metric="accuracy", batch_size=None, noisy_bias=True):
        if keras.backend.backend() != "tensorflow":
            raise ValueError(
                "The tf_keras bridge computes device noise with Keras 3 on TensorFlow: set "
                f"KERAS_BACKEND=tensorflow. Received backend: {keras.backend.backend()!r}"
            )
        legacy_keras.check_legacy_model(model, "evaluate_drift_legacy")
        bits = quantization.validate_bits(bits, "bits")
        if not isinstance(noisy_bias, bool):
            raise ValueError(f"`noisy_bias` must be a bool. Received: noisy_bias={noisy_bias!r}")
        self.noise = noise_lib.get(noise) or noise_lib.LogNormalDrift()
        self.model, precision = _plain_copy(model)
        self.layers = []
        # tf_keras has no public depth-first walk (`submodules` is breadth-first: other seeds per layer).
        for layer in self.model._flatten_layers(include_self=False, recursive=True):
            if legacy_keras.is_device_layer(layer):
                layer_bits, per_channel = precision.get(layer.name, (None, True))
                self.layers.append(_DeviceLayer(layer, bits or layer_bits, per_channel))
        if not self.layers:
            raise ValueError(
                f"Model {model.name!r} has no layer that runs on the device: it needs a "
                "Dense, Conv1D, Conv2D or DepthwiseConv2D layer."
            )
        self.bits = self.layers[0].bits
        self.metric_spec = metric
        self.batch_size = checks.positive_int("batch_size", batch_size, allow_none=True)
        self.noisy_bias = noisy_bias
        self.metric = None
        self._write_chip = tf.function(self._write_chip_fn)
        self._forward = tf.function(lambda x: self.model(x, training=False))

    # -- data and sweep parameter -------------------------------------------------

    def set_data(self, x, y):
        x, y = validation.check_data(self.model, x, y)
        batch_size = self.batch_size or min(len(x), engine.DEFAULT_BATCH_SIZE)
        self._batches = [
            (tf.constant(x[i : i + batch_size]), tf.constant(y[i : i + batch_size]))
            for i in range(0, len(x), batch_size)
        ]
        self._y_host = y
        self.num_examples = len(x)
        output = self.model(self._batches[0][0][:1], training=False)
        if isinstance(output, (list, tuple, dict)):
            raise ValueError(
                f"Model {self.model.name!r} has several outputs; drift evaluation needs one."
            )
        self.metric = metrics_lib.get(self.metric_spec, y.shape, tuple(output.shape))

    def resolve_param(self, param=None):
        """The parameter to sweep: `param` checked, or the noise model's sigma."""
        return values_lib.sweep_param(self.noise.param_names, param, self.noise)

    def check_values(self, param, values):
        values = validation.check_values(values)
        for value in values:
            self.noise.with_params(**{param: value})
        return values

    # -- chips ----------------------------------------------------------------

    def _write_chip_fn(self, seeds, params):
        """Writes one chip's weights: the clean device weights through the noise model.

        Args:
            seeds: int32 tensor (layers, 2), each layer's chip seed.
            params: float32 tensor, the noise model's parameter values.
        """
        params = [params[i] for i in range(self.noise.num_params)]
        for i, layer in enumerate(self.layers):
            # Kernel first, then bias, from one seed stream: a ReRAM layer's order.
            stream = SeedStream(seeds[i])
            layer.kernel.assign(self.noise.apply(layer.clean_kernel, stream, params))
            if layer.bias is not None:
                bias = layer.clean_bias
                if self.noisy_bias:
                    bias = self.noise.apply(bias, stream, params)
                layer.bias.assign(bias)

    def _write_clean(self):
        for layer in self.layers:
            layer.kernel.assign(layer.clean_kernel)
            if layer.bias is not None:
                layer.bias.assign(layer.clean_bias)

    def _score_current(self):
        if self.metric is None:
            raise ValueError("No data: call `set_data(x, y)` first.")
        if self.metric.in_graph:
            state = self.metric.initial_state()
            for x, y in self._batches:
                state = self.metric.update(state, y, self._forward(x))
            # The core's metrics read results for a stack of chips: this is one.
            stacked = [np.asarray(tf.convert_to_tensor(v))[None] for v in state]
            return float(self.metric.results(stacked)[0])
        predictions = np.concatenate([self._forward(x).numpy() for x, _ in self._batches])
        return float(self.metric.result(self._y_host, predictions))

    def clean_metric(self):
        """The metric with device noise off (quantization, if any, stays)."""
        self._write_clean()
        return self._score_current()

    def chip_metrics(self, chip_seeds, params, on_progress=None):
        """The metric of each chip in `chip_seeds` with noise parameter values `params`."""
        params = tf.constant(params, dtype="float32")
        results = []
        for chip_seed in np.asarray(chip_seeds).reshape(-1):
            seeds = np.stack(layer_seeds(int(chip_seed), len(self.layers)))
            self._write_chip(tf.constant(seeds, dtype="int32"), params)
            results.append(self._score_current())
            if on_progress is not None:
                on_progress(1)
        return np.asarray(results, dtype="float64")

    def sweep(self, param, values, chip_seeds, on_progress=None):
        """Metrics of shape `(len(values), chips)`: row `v` uses `chip_seeds[v]`."""
        values = self.check_values(param, values)
        rows = [
            self.chip_metrics(seeds, self.noise.with_params(**{param: value}).params(), on_progress)
            for value, seeds in zip(values, np.asarray(chip_seeds))
        ]
        return np.stack(rows)


def evaluate_drift_legacy(
    model_or_path,
    x,
    y,
    noise=None,
    sigmas=None,
    chips=engine.DEFAULT_CHIPS,
    seed=0,
    *,
    metric="accuracy",
    param=None,
    values=None,
    bits=None,
    threshold=None,
    batch_size=None,
    noisy_bias=True,
    name=None,
    dataset=None,
    progress=True,
):
    """Evaluates a tf_keras model on simulated drifted chips across a parameter sweep.

    The Keras 2 counterpart of `bayesft_keras.evaluation.evaluate_drift`: the
    same device noise models, chip seeds, sweep and `DriftReport`. The model
    and its weights are not modified (chips are written into a private copy).

    Args:
        model_or_path: a built tf_keras Sequential or Functional model, or the
            path of one (`.h5` file or SavedModel folder); plain, or quantized
            by `bayesft_keras.bridge.tfmot_qat.quantize_model` (its precision is
            then the device's unless `bits` is given).
        x, y: evaluation data (NumPy arrays).
        noise: device noise model (default `LogNormalDrift()`).
        sigmas: sigma values to sweep (shorthand for `values` when the swept
            parameter is a sigma). Default: 0, 0.05, ..., 1.5.
        chips: chips drawn per value, >= 1.
        seed: non-negative int; the same seed gives the same report.
        metric: "accuracy", a Keras metric name or instance, or a callable
            `(y_true, y_pred) -> scalar` on NumPy arrays.
        param: the noise parameter to sweep (default: the noise's sigma).
        values: the parameter values to sweep.
        bits: device weight precision (default: the QAT precision, else none).
        threshold: yield threshold of the report.
        batch_size: examples per forward pass (default: all, up to 2048).
        noisy_bias: whether biases drift too.
        name: the model's label (default: the model's name, or the file name).
        dataset: the data's label in the report.
        progress: True shows a progress bar; a callable `(done, total)` is
            called after every chip; False is silent.

    Returns:
        A `bayesft_keras.evaluation.DriftReport`.
    """
    chips = checks.positive_int("chips", chips)
    seed = checks.seed(seed)
    threshold = validation.check_threshold(threshold)
    if sigmas is not None and values is not None:
        raise ValueError("Give `sigmas` or `values`, not both.")
    if isinstance(model_or_path, (str, os.PathLike)):
        model = load_legacy_model(model_or_path)
        if name is None:
            name = os.path.splitext(os.path.basename(os.path.normpath(os.fspath(model_or_path))))[0]
    else:
        model = model_or_path
    simulator = LegacyChipSimulator(
        model, noise=noise, bits=bits, metric=metric, batch_size=batch_size, noisy_bias=noisy_bias
    )
    param = simulator.resolve_param(param)
    values = values_lib.sweep_values(param, sigmas, values, engine.DEFAULT_SIGMAS)
    values = simulator.check_values(param, values)
    simulator.set_data(x, y)
    grid = engine.chip_seed_grid(seed, len(values), chips)
    label = name or model.name
    with progress_lib.progress(progress, len(values) * chips, f"{label}: {param} sweep") as advance:
        clean = simulator.clean_metric()
        per_chip = simulator.sweep(param, values, grid, on_progress=advance)
    return DriftReport(
        values=np.asarray(values, dtype="float64"),
        chip_metrics=per_chip,
        clean=clean,
        param=param,
        metric=simulator.metric.name,
        model_name=label,
        seed=seed,
        noise=noise_lib.serialize(simulator.noise),
        bits=simulator.bits,
        threshold=threshold,
        num_examples=simulator.num_examples,
        dataset=dataset,
        chip_seeds=grid,
    )


def load_legacy_model(path):
    """Loads a tf_keras model from an `.h5` file or a SavedModel folder (uncompiled).

    Models quantized by `bayesft_keras.bridge.tfmot_qat.quantize_model` (or by
    tfmot itself) load too.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: `path` is not a loadable tf_keras model.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Model file not found: {path}")
    if not launcher.is_legacy_model_path(path):
        raise ValueError(
            f"{path} is not a Keras 2 model file: expected an .h5 file or a SavedModel "
            "folder (with saved_model.pb)."
        )
    # Quantized models need tfmot's wrappers in scope; this is a Keras 2
    # process, where tfmot may be imported.
    from bayesft_keras.bridge import tfmot_qat

    try:
        with tfmot_qat.quantize_scope():
            model = tf_keras.models.load_model(path, compile=False)
    except Exception as e:  # noqa: BLE001  (a user's file can fail in any way)
        reason = " ".join(str(e).split()) or type(e).__name__
        raise ValueError(f"Cannot load {path} as a tf_keras model: {reason}") from None
    if not isinstance(model, tf_keras.Model):
        raise ValueError(f"{path} holds a {type(model).__name__}, not a tf_keras model.")
    return model


def _plain_copy(model):
    """A plain tf_keras copy of `model` with its weights, and the QAT precision per layer.

    Layers wrapped by `bayesft_keras.bridge.tfmot_qat.quantize_model` are
    unwrapped (the simulator quantizes them itself); a layer quantized by
    another tfmot config is refused, since its quantization is not the device's.
    """
    precision = {}
    copies = []  # (new layer, values to write into it)

    def clone_layer(layer):
        if isinstance(layer, tf_keras.Model):
            raise ValueError(
                f"Model {model.name!r} contains the nested model {layer.name!r}; the tf_keras "
                "bridge evaluates flat Sequential or Functional models."
            )
        if not _is_tfmot_wrapper(layer):
            new = layer.__class__.from_config(layer.get_config())
            copies.append((new, None, layer.get_weights()))
            return new
        from bayesft_keras.bridge import tfmot_qat

        config = layer.quantize_config
        if not isinstance(config, tfmot_qat.DeviceQuantizeConfig):
            raise ValueError(
                f"Layer {layer.name!r} is quantized by tfmot with {type(config).__name__}, "
                "not by bayesft_keras.bridge's device quantizer. Evaluate the float model "
                "(before tfmot quantization) with `bits=` set, or quantize it with "
                "bayesft_keras.bridge.tfmot_qat.quantize_model."
            )
        inner = layer.layer
        new = inner.__class__.from_config(inner.get_config())
        precision[new.name] = (config.bits, config.per_channel)
        # The wrapper holds the inner layer's variables (the layer's own
        # attributes point at their quantized values), in the config's order.
        names = [name for name, _ in config._attributes(inner)]
        values = [weight.numpy() for weight, _, _ in layer._weight_vars]
        copies.append((new, names, values))
        return new

    try:
        copy = tf_keras.models.clone_model(model, clone_function=clone_layer)
    except ValueError:
        raise
    except Exception as e:  # noqa: BLE001  (tf_keras raises many kinds for uncloneable models)
        raise ValueError(f"Model {model.name!r} could not be copied for evaluation: {e}") from None
    for new, names, values in copies:
        if names is None:
            new.set_weights(values)
        else:
            for name, value in zip(names, values, strict=True):
                getattr(new, name).assign(value)
    return copy, precision


def _is_tfmot_wrapper(layer):
    # Checked by module, so that tfmot is imported only when a model uses it.
    module = type(layer).__module__
    return module.startswith("tensorflow_model_optimization") and hasattr(layer, "quantize_config")
