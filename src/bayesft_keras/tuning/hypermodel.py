"""`BayesFTHyperModel`: the BayesFT search space (one dropout rate per site) as a keras-tuner HyperModel."""

import keras
import keras_tuner

from bayesft_keras import architectures
from bayesft_keras.device import noise as noise_lib
from bayesft_keras.device import quantization
from bayesft_keras.tuning import feed
from bayesft_keras.tuning import recipe as recipe_lib
from bayesft_keras.tuning.recipe import CUSTOM_RECIPE  # noqa: F401  (re-exported: it lived here)
from bayesft_keras.tuning.recipe import RECIPES
from bayesft_keras.tuning.recipe import Recipe  # noqa: F401  (re-exported: it lived here)
from bayesft_keras.utils import checks

PRESET = "preset"


OUTPUT_SITE = "output"

# Search spaces: "paper" searches the dropout rates only (the BayesFT paper);
# "extended" searches, jointly with them, the recipe choices that move drift
# tolerance as much as dropout does (shared/REFERENCE.md).
SEARCH_SPACES = ("paper", "extended")
INJECTION_HP = "noise_injection_sigma"
INIT_SCALE_HP = "init_scale"
WEIGHT_DECAY_HP = "weight_decay"
LEARNING_RATE_HP = "learning_rate"
INIT_SCALE_RANGE = (0.1, 1.5)
WEIGHT_DECAY_RANGE = (1e-6, 1e-2)
INJECTION_RANGE = (0.0, 1.5)
LEARNING_RATE_FACTORS = (0.2, 3.0)  # around the recipe's peak rate


def hp_name(site):
    """The hyperparameter name of a dropout site, e.g. `dropout_conv1`."""
    return f"dropout_{site}"


class BayesFTHyperModel(keras_tuner.HyperModel):
    """The BayesFT search space: one dropout rate per site of a network.

    Each dropout site gets a `Float` hyperparameter `dropout_<site>`
    (e.g. `dropout_conv1`, `dropout_stage2`, `dropout_output`) in
    `rate_range`, or `output_rate_range` for the site after the output
    layer (the paper's (0.2, 0.8) and (0.1, 0.5)). The device settings are
    fixed for the whole search. `build` returns a compiled model (Adam,
    sparse categorical cross-entropy, accuracy); `fit` sets the one-cycle
    schedule's length from the data and epochs before training.

    Args:
        arch: an architecture name of `bayesft_keras.architectures` ("lenet5",
            "vgg11", ...), or None with `build_fn`.
        input_shape: the model's input shape (None: the architecture's own).
        num_classes: number of classes (None: 10).
        noise: the device noise model of every ReRAM layer (None: ideal).
        bits: weight precision of the device, or None.
        granularity: "layer" or "stage" (one rate per stage); None for the
            architecture's default.
        rate_range: (low, high) of every site but the output's.
        output_rate_range: (low, high) of the site named "output".
        learning_rate: peak learning rate of the one-cycle schedule;
            "preset" (or None) takes the architecture's recipe (`RECIPES`).
        clipvalue: gradient clipping by value, None for none; "preset":
            the recipe's (0.1 for lenet5, as the paper).
        weight_decay: Adam's weight decay, coupled L2 as PyTorch's Adam, None
            for none; "preset": the recipe's (1e-4 for lenet5).
        epochs: epochs per trial (the paper's 20), unless `fit` gets others.
        batch_size: batch size for array data, unless `fit` gets another.
        steps_per_epoch: optimizer steps per epoch; None: counted from the
            data in `fit`. Known here, it also lets `build` alone give the
            full schedule (otherwise `build` alone uses a constant rate).
        build_fn: instead of `arch`: a function `rates -> keras.Model`
            where `rates` is `{site: rate}`; needs `sites`. With
            `noise` or `bits` its model is put on the device by
            `bayesft_keras.device.convert`. A model it returns compiled is kept as is.
        sites: the site names of `build_fn`.
        initial_weights: a `.weights.h5` file every built model starts from
            (layers matched by name; those whose shapes differ keep their
            initialization), e.g. a network trained without dropout: a warm
            start, as the authors' VGG11 starts from trained weights. None:
            the initialization (`init`).
        search_space: "paper" (default): the dropout rates only. "extended":
            also the initialization scale (`init_scale`, log in
            `INIT_SCALE_RANGE`), the coupled weight decay (`weight_decay`,
            log in `WEIGHT_DECAY_RANGE`), the noise-injection sigma of training
            (`noise_injection_sigma` in `INJECTION_RANGE`, 0 = off) and the
            peak learning rate (`learning_rate`, log, `LEARNING_RATE_FACTORS`
            times the recipe's), all searched jointly; needs `arch` and a
            noise model with a `sigma` (`LogNormalDrift`).
        name, tunable: as `keras_tuner.HyperModel`.
        **arch_kwargs: the other arguments of `architectures.build` (width,
            normalization, activation, device_options, depth, ...).
    """

    # Whether the ReRAM layers apply their noise in training too (subclasses).
    _train_noise = False

    def __init__(
        self,
        arch=None,
        input_shape=None,
        num_classes=None,
        *,
        # Grouped by concept: device; search ranges; recipe; training length; own network; start.
        noise=None, bits=None, granularity=None,
        rate_range=(0.2, 0.8), output_rate_range=(0.1, 0.5),
        learning_rate=PRESET, clipvalue=PRESET, weight_decay=PRESET,
        epochs=20, batch_size=128, steps_per_epoch=None,
        build_fn=None, sites=None,
        initial_weights=None, search_space="paper",
        name=None, tunable=True,
        **arch_kwargs,
    ):
        super().__init__(name=name, tunable=tunable)
        if search_space not in SEARCH_SPACES:
            raise ValueError(
                f"`search_space` must be one of {list(SEARCH_SPACES)}. "
                f"Received: search_space={search_space!r}"
            )
        self.search_space = search_space
        self.initial_weights = initial_weights
        if self.extended:
            noise_model = noise_lib.get(noise)
            if build_fn is not None or noise_model is None or "sigma" not in noise_model.param_names:
                raise ValueError(
                    "search_space='extended' needs an `arch` of the zoo and a noise model with a "
                    f"`sigma` (e.g. LogNormalDrift(1.5)). Received: arch={arch!r}, "
                    f"build_fn={build_fn!r}, noise={noise!r}"
                )
        self.rate_range = checks.rate_range("rate_range", rate_range)
        self.output_rate_range = checks.rate_range("output_rate_range", output_rate_range)
        self.epochs = checks.count("epochs", epochs)
        self.batch_size = checks.count("batch_size", batch_size)
        self.steps_per_epoch = checks.count("steps_per_epoch", steps_per_epoch, allow_none=True)
        self.noise = noise_lib.get(noise)
        self.bits = quantization.validate_bits(bits, "bits")
        if build_fn is None:
            if arch is None:
                raise ValueError(
                    "Give `arch` (one of "
                    f"{architectures.available()}) or `build_fn`. Received neither."
                )
            if sites is not None:
                raise ValueError(
                    "`sites` is for `build_fn`; an architecture has its own (see "
                    f"architectures.sites({arch!r})). Received: sites={sites!r}"
                )
            if self._train_noise or self.extended:
                device_options = arch_kwargs.get("device_options") or {}
                arch_kwargs["device_options"] = {**device_options, "train_noise": True}
            self._blueprint = architectures.blueprint(
                arch,
                noise=noise,
                bits=bits,
                input_shape=input_shape,
                num_classes=10 if num_classes is None else num_classes,
                granularity=granularity,
                **arch_kwargs,
            )
            self.arch = self._blueprint.architecture.name
            self.sites = list(self._blueprint.sites)
            recipe = RECIPES[self.arch]
        else:
            self._check_build_fn(build_fn, arch, input_shape, num_classes, granularity, arch_kwargs)
            self._blueprint = None
            self.arch = getattr(build_fn, "__name__", "build_fn")
            self.sites = self._check_sites(sites)
            recipe = CUSTOM_RECIPE
        self.build_fn = build_fn
        self.learning_rate = (
            recipe.learning_rate if learning_rate in (PRESET, None)
            else checks.positive("learning_rate", learning_rate, allow_none=True)
        )
        self.clipvalue = (
            recipe.clipvalue if clipvalue == PRESET else checks.positive("clipvalue", clipvalue, allow_none=True)
        )
        self.weight_decay = (
            recipe.weight_decay if weight_decay == PRESET
            else checks.positive("weight_decay", weight_decay, allow_none=True)
        )

    @staticmethod
    def _check_build_fn(build_fn, arch, input_shape, num_classes, granularity, arch_kwargs):
        if not callable(build_fn):
            raise ValueError(
                f"`build_fn` must be a function rates -> keras.Model. Received: build_fn={build_fn!r}"
            )
        given = {
            "arch": arch, "input_shape": input_shape, "num_classes": num_classes,
            "granularity": granularity,
        }
        given = [k for k, v in given.items() if v is not None] + sorted(arch_kwargs)
        if given:
            raise ValueError(
                f"With `build_fn`, the function builds the whole model; {given} apply only "
                "to a named `arch`. Remove them."
            )

    @staticmethod
    def _check_sites(sites):
        if sites is None or isinstance(sites, str) or not sites:
            raise ValueError(
                "`build_fn` needs `sites`, the list of its dropout-site names. "
                f"Received: sites={sites!r}"
            )
        sites = list(sites)
        if not all(isinstance(s, str) and s for s in sites) or len(set(sites)) != len(sites):
            raise ValueError(f"`sites` must be distinct non-empty strings. Received: sites={sites!r}")
        return sites

    # -- search space ---------------------------------------------------------

    def range_of(self, site):
        """The (low, high) range of a site's rate."""
        return self.output_rate_range if site == OUTPUT_SITE else self.rate_range

    @property
    def extended(self):
        return self.search_space == "extended"

    def declare_hyperparameters(self, hp):
        """Declares one Float per site in `hp` (keras-tuner's hook), and the recipe's
        values of the extended space; returns `{site: rate}`."""
        rates = {}
        for site in self.sites:
            low, high = self.range_of(site)
            rates[site] = hp.Float(hp_name(site), min_value=low, max_value=high)
        if self.extended:
            hp.Float(INIT_SCALE_HP, *INIT_SCALE_RANGE, sampling="log")
            hp.Float(WEIGHT_DECAY_HP, *WEIGHT_DECAY_RANGE, sampling="log")
            hp.Float(INJECTION_HP, *INJECTION_RANGE)
            low, high = LEARNING_RATE_FACTORS
            hp.Float(LEARNING_RATE_HP, self.learning_rate * low, self.learning_rate * high, sampling="log")
        return rates

    def recipe_values(self):
        """The hand-picked values of the extended space's recipe hyperparameters: the
        recipe's own (scale 1, its weight decay, no noise injection, its rate)."""
        if not self.extended:
            return {}
        low, high = WEIGHT_DECAY_RANGE
        return {
            INIT_SCALE_HP: 1.0,
            WEIGHT_DECAY_HP: min(max(self.weight_decay or low, low), high),
            INJECTION_HP: 0.0,
            LEARNING_RATE_HP: self.learning_rate,
        }

    def hyperparameters(self):
        """A new `keras_tuner.HyperParameters` holding this search space."""
        hp = keras_tuner.HyperParameters()
        self.declare_hyperparameters(hp)
        return hp

    def hyperparameter_names(self):
        """The names of the hyperparameters this hypermodel declares, in order."""
        names = [hp_name(site) for site in self.sites]
        if self.extended:
            names += [INIT_SCALE_HP, WEIGHT_DECAY_HP, INJECTION_HP, LEARNING_RATE_HP]
        return names

    def rates(self, hp):
        """`{site: rate}` of a `HyperParameters` (or a `{name: value}` dict)."""
        values = hp.values if isinstance(hp, keras_tuner.HyperParameters) else hp
        return {site: values[hp_name(site)] for site in self.sites}

    def reuse_blocker(self):
        """Why this search's trials cannot share one compiled model (`tuning.reuse`), or None.

        They can when every trial builds the same layers and only the dropout rates, held
        in `SiteDropout` variables, differ.
        """
        if self._blueprint is None and not getattr(self, "_same_layers", False):
            return "a `build_fn` builds each trial's model"
        if self.extended:
            return (
                "search_space='extended' also searches the learning rate and weight decay, "
                "which the compiled optimizer holds as constants"
            )
        if type(self).declare_hyperparameters is not BayesFTHyperModel.declare_hyperparameters:
            return f"{type(self).__name__} searches hyperparameters other than dropout rates"
        return None

    # -- keras-tuner hooks ----------------------------------------------------

    def build(self, hp):
        rates = self.declare_hyperparameters(hp)
        if self._blueprint is not None:
            init_scale = hp.get(INIT_SCALE_HP) if self.extended else None
            model = self._blueprint.build(rates, init_scale=init_scale)
            if self.initial_weights is not None:
                model.load_weights(self.initial_weights, skip_mismatch=True)
        else:
            model = self.build_fn(dict(rates))
            if not isinstance(model, keras.Model):
                raise ValueError(
                    f"`build_fn` must return a keras.Model. It returned {type(model).__name__}."
                )
            if self.noise is not None or self.bits is not None:
                from bayesft_keras.device.convert import convert

                compile_config = model.get_compile_config() if model.compiled else None
                model = convert(
                    model, noise=self.noise, bits=self.bits, train_noise=self._train_noise
                )
                if compile_config is not None:
                    model.compile_from_config(compile_config)
            if getattr(model, "compiled", False):
                return model  # the user's own training recipe
        steps = None if self.steps_per_epoch is None else self.epochs * self.steps_per_epoch
        if self.extended:
            model._bayesft_searched_recipe = {
                "learning_rate": hp.get(LEARNING_RATE_HP), "weight_decay": hp.get(WEIGHT_DECAY_HP),
            }
        self._compile(model, steps)
        return model

    def fit(self, hp, model, *args, **kwargs):
        """Trains `model` (keras-tuner's hook); the schedule spans exactly the training."""
        if self.extended:
            from bayesft_keras.device.chip import set_noise

            # Training sees drift at the searched strength (0: none); evaluation, the device's.
            set_noise(model, self.noise.with_params(sigma=hp.get(INJECTION_HP)))
            try:
                return self._fit(hp, model, *args, **kwargs)
            finally:
                set_noise(model, self.noise)
        return self._fit(hp, model, *args, **kwargs)

    def _fit(self, hp, model, *args, **kwargs):
        kwargs.setdefault("epochs", self.epochs)
        x = args[0] if args else kwargs.get("x")
        if recipe_lib.is_array_data(x):
            kwargs.setdefault("batch_size", self.batch_size)
        if getattr(model, "_bayesft_recipe", False):
            steps = kwargs.get("steps_per_epoch") or self.steps_per_epoch or recipe_lib.steps_per_epoch(
                x, kwargs.get("batch_size"), kwargs.get("validation_split", 0.0)
            )
            if steps is None:
                raise ValueError(
                    "The one-cycle schedule needs the number of steps per epoch, which cannot "
                    f"be counted from data of type {type(x).__name__}: pass `steps_per_epoch` "
                    "to BayesFTHyperModel or to fit."
                )
            total = kwargs["epochs"] * steps
            if model._bayesft_total_steps != total:
                self._compile(model, total)
        fed_args, fed_kwargs = feed.fed_arguments(args, kwargs)
        first_fit = model.train_function is None
        if fed_args is not args and first_fit and not kwargs.get("callbacks") and feed.epoch_per_call():
            # One compiled call per epoch: at a small network's size, TensorFlow's dispatch of
            # each step costs as much as the step (`tuning.feed`). Only before the first fit,
            # while no train function is traced, and without callbacks, which would then see
            # one batch per epoch.
            model.steps_per_execution = fed_kwargs["steps_per_epoch"]
        return model.fit(*fed_args, **fed_kwargs)

    # -- training recipe ------------------------------------------------------

    def optimizer(self, total_steps=None, learning_rate=None, weight_decay=None):
        """`TorchAdam` with the one-cycle schedule (and its momentum cycle) over
        `total_steps`; a constant rate if None. `learning_rate` and
        `weight_decay` replace the recipe's when given (searched values)."""
        return recipe_lib.one_cycle_adam(
            self.learning_rate if learning_rate is None else learning_rate,
            total_steps,
            self.weight_decay if weight_decay is None else weight_decay,
            self.clipvalue,
        )

    def _compile(self, model, total_steps):
        optimizer = self.optimizer(total_steps, **getattr(model, "_bayesft_searched_recipe", {}))
        recipe_lib.compile_model(model, optimizer, total_steps)

    def __repr__(self):
        return (
            f"{type(self).__name__}({self.arch!r}, sites={self.sites}, noise={self.noise!r}, "
            f"bits={self.bits}, rate_range={self.rate_range}, "
            f"output_rate_range={self.output_rate_range}, learning_rate={self.learning_rate})"
        )

    @classmethod
    def from_model(cls, model, sites="all", init_from_model=False, **kwargs):
        """The search space of a Sequential or Functional `model` (`tuning.site_copy.build_fn`): `sites`
        "all", "dense" or layer names; `init_from_model`: trials start from its weights."""
        from bayesft_keras.tuning import site_copy

        build_fn, names = site_copy.build_fn(model, sites, init_from_model)
        hypermodel = cls(build_fn=build_fn, sites=names, **kwargs)
        hypermodel._same_layers = True  # every trial: the same copy, only the rates differ
        return hypermodel


class NoiseInjectionHyperModel(BayesFTHyperModel):
    """Baseline: noise-injection training, with the injected drift strength tuned.

    The model is trained with a fresh drift draw in every step
    (`train_noise=True`) at strength `noise_injection_sigma`, a Float in
    `sigma_range`; it is evaluated at the strength of `noise`, which is
    restored after training. The dropout sites are declared as by
    `BayesFTHyperModel` (a tuner may fix them, e.g. to 0).

    Args:
        sigma_range: (low, high) of the injected sigma.
        noise: the evaluation noise; needs a `sigma` parameter
            (`LogNormalDrift`).
        *args, **kwargs: as `BayesFTHyperModel`.
    """

    _train_noise = True

    def __init__(self, *args, sigma_range=(0.1, 1.5), noise=None, **kwargs):
        noise = noise_lib.get(noise)
        if noise is None or "sigma" not in noise.param_names:
            raise ValueError(
                "Noise-injection training needs a noise model with a `sigma` parameter, "
                f"e.g. LogNormalDrift(0.8). Received: noise={noise!r}"
            )
        try:
            low, high = (float(v) for v in sigma_range)
        except (TypeError, ValueError):
            low = high = -1.0
        if not 0.0 <= low < high:
            raise ValueError(
                f"`sigma_range` must be a pair 0 <= low < high. Received: sigma_range={sigma_range!r}"
            )
        self.sigma_range = (low, high)
        super().__init__(*args, noise=noise, **kwargs)

    def declare_hyperparameters(self, hp):
        rates = super().declare_hyperparameters(hp)
        hp.Float(INJECTION_HP, min_value=self.sigma_range[0], max_value=self.sigma_range[1])
        return rates

    def hyperparameter_names(self):
        return super().hyperparameter_names() + [INJECTION_HP]

    def fit(self, hp, model, *args, **kwargs):
        from bayesft_keras.device.chip import set_noise

        sigma = hp.get(INJECTION_HP)
        set_noise(model, self.noise.with_params(sigma=sigma))
        try:
            return super().fit(hp, model, *args, **kwargs)
        finally:
            set_noise(model, self.noise)
