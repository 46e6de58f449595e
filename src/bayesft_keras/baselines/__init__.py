"""The paper's own baselines: FTNA (error-correcting output codes) and AWP (adversarial weight perturbation).

`make_hypermodel` builds either as a hypermodel of the architecture zoo (what
`bayesft-keras tune --baselines ftna,awp` runs); `run_baseline` trains one and
returns its drift report (for benchmarks).
"""

from bayesft_keras.baselines import awp
from bayesft_keras.baselines import ftna
from bayesft_keras.baselines.awp import AWPHyperModel
from bayesft_keras.baselines.awp import AWPModel
from bayesft_keras.baselines.awp import awp_model
from bayesft_keras.baselines.ftna import CodewordAccuracy
from bayesft_keras.baselines.ftna import CodewordMSE
from bayesft_keras.baselines.ftna import FTNAHyperModel

HYPERMODELS = {"ftna": FTNAHyperModel, "awp": AWPHyperModel}
TITLES = {
    "ftna": "FTNA (error-correcting output codes)",
    "awp": "AWP (adversarial weight perturbation)",
}


def make_hypermodel(method, *args, **kwargs):
    """The hypermodel of baseline `method` ("ftna" or "awp").

    Args:
        method: "ftna" or "awp".
        *args, **kwargs: as `BayesFTHyperModel` (arch, input_shape,
            num_classes, noise, bits, recipe...), plus the baseline's own
            settings (`FTNAHyperModel`, `AWPHyperModel`); unset, they are the
            authors'.
    """
    if method not in HYPERMODELS:
        raise ValueError(f"`method` must be one of {list(HYPERMODELS)}. Received: method={method!r}")
    return HYPERMODELS[method](*args, **kwargs)


def run_baseline(
    method,
    dataset,
    arch="lenet5",
    *,
    sigmas=None,
    chips=20,
    seed=0,
    chip_seed=None,
    verbose=0,
    **kwargs,
):
    """Trains baseline `method` on `dataset` without dropout and scores it on drifted chips.

    Args:
        method: "ftna" or "awp".
        dataset: a `bayesft_keras.data.Dataset` (trained on its train split,
            scored on its test split).
        arch: an architecture of the zoo.
        sigmas: the drift sigmas of the report (None: 0, 0.05, ..., 1.5).
        chips: simulated chips per sigma.
        seed: seed of the training (`keras.utils.set_random_seed`).
        chip_seed: seed of the chips (None: `seed`).
        verbose: Keras verbosity of the training.
        **kwargs: as `make_hypermodel` (noise, bits, epochs, batch_size,
            learning_rate, ...). `noise` defaults to `LogNormalDrift(0.8)`.

    Returns:
        `(model, report)`: the trained model and its `DriftReport` (test split).
    """
    import keras
    import keras_tuner

    from bayesft_keras.evaluation import evaluate_drift
    from bayesft_keras.evaluation.engine import DEFAULT_SIGMAS
    from bayesft_keras.device.noise import LogNormalDrift

    keras.utils.set_random_seed(seed)
    kwargs.setdefault("noise", LogNormalDrift(0.8))
    hypermodel = make_hypermodel(
        method, arch, dataset.input_shape, dataset.num_classes, **kwargs
    )
    hp = keras_tuner.HyperParameters()
    for name in hypermodel.hyperparameter_names():
        hp.Fixed(name, 0.0)
    model = hypermodel.build(hp)
    hypermodel.fit(hp, model, dataset.x_train, dataset.y_train, verbose=verbose)
    report = evaluate_drift(
        model,
        (dataset.x_test, dataset.y_test),
        sigmas=DEFAULT_SIGMAS if sigmas is None else sigmas,
        chips=chips,
        seed=seed if chip_seed is None else chip_seed,
        metric=hypermodel.metric(),
        name=TITLES[method],
        progress=bool(verbose),
    )
    return model, report
