"""The settings of one BayesFT search, from a preset file and command-line overrides.

Presets are TOML files shipped in the package (`bayesft_keras/presets/tuners/`,
linked as the top-level `tuners/` of a clone). Their tables (`[model]`,
`[search]`, ...) are for readability only: every key is unique and maps to one
`TuneConfig` field, named like the CLI flag that overrides it.
"""

import dataclasses
import math
import os
import sys
import tomllib
from pathlib import Path

from bayesft_keras import data
from bayesft_keras import presets as shipped
from bayesft_keras import tasks
from bayesft_keras.data import files
from bayesft_keras.device import quantization
from bayesft_keras.utils import checks

# ftna, awp: the paper's own baselines (bayesft_keras.baselines), architecture zoo only:
# each task lists those it runs (`Task.baselines`).
BASELINES = ("random", "uniform", "no_dropout", "noise_injection", "ftna", "awp")
INITS = ("torch", "he", "glorot")
SEARCH_SPACES = ("paper", "extended")
DEFAULT_PRESET = "quick"


@dataclasses.dataclass
class TuneConfig:
    """Everything a search needs; defaults are those of the quick CPU preset."""

    name: str = "quick"
    description: str = ""
    # a `bayesft_keras.tasks` name: "classification" (architecture zoo,
    # accuracy) or "detection" (detector, digits-detect/VOC/COCO, mAP@0.5)
    task: str = "classification"
    # model
    arch: str = "vgg"
    width: float = 0.125
    normalization: str = "none"
    activation: str = "relu"
    granularity: str = "stage"
    input_shape: tuple | None = None
    # your own network instead of `arch`: a `.keras` file of a Sequential or Functional
    # model (`tune --model`); its dropout sites: "all" (after every Dense/Conv layer),
    # "dense", or comma-separated layer names; `init_from_model`: trials start from its
    # weights (fine-tuning) rather than from new ones
    model: str | None = None
    sites: str = "all"
    init_from_model: bool = False
    # weight initialization: None for the architecture's default ("torch",
    # PyTorch's, as the authors train; "he" for resnet18/mobilenetv2)
    init: str | None = None
    init_scale: float = 1.0
    # data: a name of `bayesft_keras.data`, or the user's .npz file or image folder,
    # kept as an absolute path with its content fingerprint (set from the data, not
    # by the user): a resume finds the file from any folder, and is refused once it changed
    dataset: str = "digits"
    data_dir: str | None = None
    max_train_examples: int | None = None
    # device
    bits: int | None = None
    # device preset of devices/ (lognormal: the paper's; pcm, reram-cmo, or a TOML path); with
    # another device, `sigma` is the objective's value of the preset's swept parameter (e.g. t)
    device: str = "lognormal"
    # objective: mean accuracy over `chips` chips at `sigma` (or over `sigma_range`)
    sigma: float = 0.8
    sigma_range: tuple | None = None
    sigma_points: int = 5
    chips: int = 20
    min_clean_accuracy: float = 0.0
    # search
    trials: int = 8
    initial_points: int = 4
    rate_range: tuple = (0.2, 0.8)
    output_rate_range: tuple = (0.1, 0.5)
    # "paper": dropout rates only; "extended": also init scale, weight decay,
    # noise-injection sigma and learning rate (BayesFTHyperModel)
    search_space: str = "paper"
    # the hand-picked first trial's rates, one per site in order (None: the
    # centre of each range)
    initial_rates: tuple | None = None
    baselines: tuple = ("no_dropout",)
    uniform_rate: float = 0.5
    noise_injection_range: tuple = (0.1, 1.5)
    # trials trained together in one compiled model (tuning.group): a number or "auto"
    trials_at_once: int | str = 1
    # every trial trains one model compiled once (tuning.reuse): true, false or "auto"
    compile_once: bool | str = "auto"
    # training
    # > 0: train the network once without dropout for this many epochs, and
    # start every trial and baseline from those weights (a warm start, as the
    # authors' VGG11 starts from trained weights); 0: from the initialization
    warm_start_epochs: int = 0
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float | None = None
    clipvalue: float | None = None
    weight_decay: float | None = None
    # each trial's drift curve (TensorBoard HParams): this many sigmas over
    # report_sigmas' range, besides the objective's; 0 scores the objective only
    trial_curve_points: int = 7
    # final report of the best model and the baselines
    report_sigmas: tuple = (0.0, 1.5, 31)
    report_chips: int = 20
    seed: int = 0
    dataset_fingerprint: str | None = dataclasses.field(default=None, init=False)
    # the content fingerprint of `model`: a resume with a changed model file is refused
    model_fingerprint: str | None = dataclasses.field(default=None, init=False)

    def __post_init__(self):
        self.dataset = data.resolve(self.dataset)  # a path: absolute, checked to exist
        self.dataset_fingerprint = data.fingerprint(self.dataset)
        if isinstance(self.model, str) and self.model:
            # Absolute, as a dataset path: a resume from another folder finds the same file.
            self.model = os.path.abspath(os.path.expanduser(self.model))
            self.model_fingerprint = files.fingerprint(self.model) if os.path.isfile(self.model) else None
            # `arch` names the network in tables, summaries and messages: with `model`, its file's name.
            self.arch = Path(self.model).name
        self.validate()

    def validate(self):
        def fail(name, value, allowed):
            raise ValueError(f"`{name}` must be {allowed}. Received: {name}={value!r}")

        if self.task not in tasks.names():
            fail("task", self.task, f"one of {list(tasks.names())}")
        if not _finite(self.sigma) or self.sigma < 0:
            fail("sigma", self.sigma, "a finite number >= 0")
        checks.seed(self.seed)  # the message of every seed argument: "`seed` must be a non-negative int"
        if not _positive_int(self.chips):
            fail("chips", self.chips, "an integer >= 1")
        if not _positive_int(self.trials):
            fail("trials", self.trials, "an integer >= 1")
        if not _positive_int(self.epochs):
            fail("epochs", self.epochs, "an integer >= 1")
        if isinstance(self.warm_start_epochs, bool) or not isinstance(self.warm_start_epochs, int) or (
            self.warm_start_epochs < 0
        ):
            fail("warm_start_epochs", self.warm_start_epochs, "an integer >= 0")
        if not _positive_int(self.batch_size):
            fail("batch_size", self.batch_size, "an integer >= 1")
        if isinstance(self.trial_curve_points, bool) or not isinstance(self.trial_curve_points, int) or (
            self.trial_curve_points < 0
        ):
            fail("trial_curve_points", self.trial_curve_points, "an integer >= 0")
        if not _positive_int(self.report_chips):
            fail("report_chips", self.report_chips, "an integer >= 1")
        if self.bits is not None and (
            isinstance(self.bits, bool) or not isinstance(self.bits, int)
            or not quantization.MIN_BITS <= self.bits <= quantization.MAX_BITS
        ):
            # 0 is not "none": full precision is written out, never implied by a number.
            fail("bits", self.bits, f"an integer in [{quantization.MIN_BITS}, {quantization.MAX_BITS}] or none")
        if not _finite(self.min_clean_accuracy) or not 0.0 <= self.min_clean_accuracy <= 1.0:
            fail("min_clean_accuracy", self.min_clean_accuracy, "in [0, 1]")
        for name in ("rate_range", "output_rate_range", "noise_injection_range"):
            value = getattr(self, name)
            if len(value) != 2 or not all(_finite(v) for v in value) or not 0.0 <= value[0] < value[1] or (
                name != "noise_injection_range" and value[1] >= 1.0
            ):
                fail(name, value, "a pair (low, high) with 0 <= low < high (< 1 for dropout rates)")
        if self.sigma_range is not None:
            if len(self.sigma_range) != 2 or not all(_finite(v) for v in self.sigma_range) or not (
                0.0 <= self.sigma_range[0] < self.sigma_range[1]
            ):
                fail("sigma_range", self.sigma_range, "a pair (low, high) of finite numbers with 0 <= low < high")
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown:
            fail("baselines", list(self.baselines), f"a subset of {list(BASELINES)}")
        zoo_only = [b for b in self.baselines if b not in tasks.get(self.task).baselines]
        if zoo_only:
            fail("baselines", list(self.baselines),
                 f"without {zoo_only} for task={self.task!r} (classification only)")
        if len(self.report_sigmas) != 3 or not all(_finite(v) for v in self.report_sigmas) or (
            self.report_sigmas[0] < 0
        ):
            fail("report_sigmas", self.report_sigmas, "(start, stop, count) of finite numbers with start >= 0")
        if self.granularity not in ("stage", "layer"):
            fail("granularity", self.granularity, "'stage' or 'layer'")
        if self.init is not None and self.init not in INITS:
            fail("init", self.init, f"one of {list(INITS)} or none (the architecture's default)")
        if (
            isinstance(self.init_scale, bool) or not isinstance(self.init_scale, (int, float))
            or not 0 < self.init_scale < float("inf")
        ):
            fail("init_scale", self.init_scale, "a positive finite number")
        if not (self.trials_at_once == "auto" or _positive_int(self.trials_at_once)):
            fail("trials_at_once", self.trials_at_once, "an integer >= 1 or 'auto'")
        if not (self.compile_once is True or self.compile_once is False or self.compile_once == "auto"):
            fail("compile_once", self.compile_once, "true, false or 'auto'")
        if self.search_space not in SEARCH_SPACES:
            fail("search_space", self.search_space, f"one of {list(SEARCH_SPACES)}")
        if self.initial_rates is not None and (
            not self.initial_rates
            or not all(isinstance(r, (int, float)) and 0 <= r < 1 for r in self.initial_rates)
        ):
            fail("initial_rates", self.initial_rates, "a list of dropout rates in [0, 1), one per site")

        _check_model_options(self, fail)

    def replace(self, **overrides):
        """A copy with the given fields replaced; None values are ignored."""
        # init=False fields (dataset_fingerprint, model_fingerprint) come from the files, never from a setting.
        unknown = set(overrides) - {f.name for f in dataclasses.fields(self) if f.init}
        if unknown:
            raise ValueError(f"Unknown setting(s) {sorted(unknown)}")
        values = {k: _normalise(k, v) for k, v in overrides.items() if v is not None}
        return dataclasses.replace(self, **values)

    def to_dict(self):
        return dataclasses.asdict(self)


def _check_model_options(config, fail):
    """`model`, `sites`, `init_from_model`, and the settings a user's own model cannot take."""
    if config.model is not None and (not isinstance(config.model, str) or not config.model):
        fail("model", config.model, "the path of a .keras file, or none")
    if not isinstance(config.sites, str) or not config.sites.strip(" ,"):
        fail("sites", config.sites, "'all', 'dense' or comma-separated layer names")
    if not isinstance(config.init_from_model, bool):
        fail("init_from_model", config.init_from_model, "true or false")
    if config.model is None:
        return
    if config.task != "classification":
        fail("task", config.task, "'classification' with `model` (a model of class probabilities)")
    if config.input_shape is not None:
        fail("input_shape", config.input_shape, "none with `model`: the data are brought to the model's input shape")
    zoo_only = [b for b in config.baselines if b in ("ftna", "awp")]
    if zoo_only:
        fail("baselines", list(config.baselines), f"without {zoo_only} with `model` (architecture zoo only)")
    if config.search_space != "paper":
        fail("search_space", config.search_space, "'paper' with `model` (the extended space is the zoo's)")
    if config.warm_start_epochs:
        fail("warm_start_epochs", config.warm_start_epochs,
             "0 with `model`: start from the model's own weights with `init_from_model` instead")


def _finite(value):
    """A real number (not a bool) that is neither NaN nor infinite."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


_TUPLE_FIELDS = {
    f.name
    for f in dataclasses.fields(TuneConfig)
    if "tuple" in str(f.type)
}


def _normalise(name, value):
    if name in _TUPLE_FIELDS and isinstance(value, list):
        return tuple(value)
    if name == "bits" and value in ("none", "None"):
        return None
    if name == "init" and value in ("none", "None", "default"):
        return None
    return value


def available_presets():
    """The names of the shipped presets (`bayesft_keras/presets/tuners/*.toml`)."""
    return shipped.names(shipped.TUNERS)


def find_preset(name_or_path):
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"Preset file not found: {name_or_path}")
        return path
    candidate = shipped.find(shipped.TUNERS, name_or_path)
    if candidate is not None:
        return candidate
    raise ValueError(
        f"Unknown preset {name_or_path!r}: pass a .toml path or one of {available_presets()}"
    )


def load_preset(name_or_path=DEFAULT_PRESET):
    """Reads a preset (a shipped preset's name, see `available_presets`, or a path to a TOML file)
    into a `TuneConfig`."""
    path = find_preset(name_or_path)
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"Cannot read preset {str(path)!r}: {e}") from None
    flat = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            for sub_key, sub_value in value.items():
                if sub_key in flat:
                    raise ValueError(f"Preset {str(path)!r} sets {sub_key!r} twice")
                flat[sub_key] = sub_value
        else:
            flat[key] = value
    flat.setdefault("name", path.stem)
    try:
        return TuneConfig().replace(**flat)
    except (ValueError, TypeError) as e:
        raise ValueError(f"Invalid preset {str(path)!r}: {e}") from None
