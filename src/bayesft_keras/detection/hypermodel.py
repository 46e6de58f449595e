"""`DetectionHyperModel`: the BayesFT search space of the detector, for keras-tuner.

The conventions of `bayesft_keras.tuning.hypermodel.BayesFTHyperModel` (one `Float`
`dropout_<site>` per site, Adam with a one-cycle schedule spanning the
training, `build(hp)` / `fit(hp, model, x, y)`), so the drift-scored tuners
take it as they take the classification one. `fit` takes the padded boxes of
`bayesft_keras.detection.data` as `y` and turns them into the loss's target
maps itself, so the tuner passes detection data as it passes labels.
"""

import numpy as np

from bayesft_keras.detection import model as model_lib
from bayesft_keras.detection.losses import CenterNetLoss
from bayesft_keras.detection.losses import encode_targets
from bayesft_keras.tuning.hypermodel import BayesFTHyperModel
from bayesft_keras.tuning.hypermodel import NoiseInjectionHyperModel

# The recipe of the detector on digits-detect (tests/test_detection_training.py):
# Adam, one-cycle schedule peaking at 6e-3, batch 64.
LEARNING_RATE = 6e-3


class DetectionHyperModel(BayesFTHyperModel):
    """The BayesFT search space of the CenterNet-style detector.

    One `Float` hyperparameter `dropout_<site>` in `rate_range` per
    site of `bayesft_keras.detection.model` (`stage1`, `stage2`,
    `stage3`, `head`). `build` returns the detector compiled with
    `CenterNetLoss`; `fit` accepts padded boxes `(N, max_boxes, 6)` as `y`
    (and in `validation_data`) and trains on their target maps.

    Args:
        input_shape: the images' (height, width, channels).
        num_classes: number of object classes.
        noise: the device noise model of every ReRAM layer (None: ideal).
        bits: weight precision of the device, or None.
        rate_range: (low, high) of every site's rate.
        learning_rate: peak learning rate of the one-cycle schedule
            (None: `LEARNING_RATE`).
        clipvalue, weight_decay: Adam's gradient clipping by value and
            weight decay, None for none.
        epochs, batch_size, steps_per_epoch: as `BayesFTHyperModel`.
        offset_weight, size_weight: the loss weights (`CenterNetLoss`).
        width, normalization, activation, device_options: as
            `bayesft_keras.detection.model.build_detector`.
        name, tunable: as `keras_tuner.HyperModel`.
    """

    def __init__(
        self,
        input_shape=(48, 48, 1),
        num_classes=10,
        *,
        noise=None,
        bits=None,
        rate_range=(0.2, 0.8),
        learning_rate=None,
        clipvalue=None,
        weight_decay=None,
        epochs=20,
        batch_size=64,
        steps_per_epoch=None,
        offset_weight=1.0,
        size_weight=0.1,
        width=1.0,
        normalization="none",
        activation="relu",
        device_options=None,
        name=None,
        tunable=True,
    ):
        # The base class's own checks of ranges, counts and the recipe; the
        # model comes from `build` below (build_fn is only a placeholder).
        super().__init__(
            build_fn=model_lib.build_detector,
            sites=model_lib.sites(),
            rate_range=rate_range,
            learning_rate=LEARNING_RATE if learning_rate is None else learning_rate,
            clipvalue=clipvalue,
            weight_decay=weight_decay,
            epochs=epochs,
            batch_size=batch_size,
            steps_per_epoch=steps_per_epoch,
            name=name,
            tunable=tunable,
        )
        if self._train_noise:
            device_options = {**(device_options or {}), "train_noise": True}
        self._arch_kwargs = dict(
            input_shape=input_shape, num_classes=num_classes, noise=noise, bits=bits,
            width=width, normalization=normalization, activation=activation,
            device_options=device_options,
        )
        # Builds once to validate every argument now rather than in a trial.
        probe = model_lib.build_detector(**self._arch_kwargs)
        self.noise = probe.get_layer("heatmap").noise
        self.bits = probe.get_layer("heatmap").bits
        self.input_shape = tuple(probe.input_shape[1:])
        self.num_classes = num_classes
        self.loss = CenterNetLoss(offset_weight=offset_weight, size_weight=size_weight)
        self.arch = model_lib.ARCH_NAME
        self.build_fn = None

    def build(self, hp):
        rates = self.declare_hyperparameters(hp)
        model = model_lib.build_detector(dropout=rates, **self._arch_kwargs)
        steps = None if self.steps_per_epoch is None else self.epochs * self.steps_per_epoch
        self._compile(model, steps)
        return model

    def fit(self, hp, model, *args, **kwargs):
        """Trains `model` on images and padded boxes (or ready target maps)."""
        args = list(args)
        if len(args) >= 2:
            args[1] = self.targets(args[1])
        elif "y" in kwargs:
            kwargs["y"] = self.targets(kwargs["y"])
        validation = kwargs.get("validation_data")
        if isinstance(validation, (tuple, list)) and len(validation) == 2:
            kwargs["validation_data"] = (validation[0], self.targets(validation[1]))
        return super().fit(hp, model, *args, **kwargs)

    def targets(self, y):
        """Padded boxes -> target maps (`encode_targets`); target maps pass through."""
        y = np.asarray(y)
        if y.ndim == 3:
            return encode_targets(y, self.input_shape, self.num_classes)
        return y

    def _compile(self, model, total_steps):
        model.compile(optimizer=self.optimizer(total_steps), loss=self.loss)
        model._bayesft_recipe = True
        model._bayesft_total_steps = total_steps

    def __repr__(self):
        return (
            f"{type(self).__name__}({self.arch!r}, sites={self.sites}, noise={self.noise!r}, "
            f"bits={self.bits}, input_shape={self.input_shape}, num_classes={self.num_classes}, "
            f"rate_range={self.rate_range}, learning_rate={self.learning_rate})"
        )


class DetectionNoiseInjectionHyperModel(NoiseInjectionHyperModel, DetectionHyperModel):
    """The noise-injection baseline for the detector: trained on a fresh drift
    draw every step at strength `noise_injection_sigma` (tuned in
    `sigma_range`), evaluated at `noise`'s strength.

    Args:
        sigma_range: (low, high) of the injected sigma.
        noise: the evaluation noise; needs a `sigma` parameter.
        **kwargs: as `DetectionHyperModel`.
    """


__all__ = [
    "DetectionHyperModel",
    "DetectionNoiseInjectionHyperModel",
    "LEARNING_RATE",
]
