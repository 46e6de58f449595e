"""The TensorBoard HParams view of a search: one session per trial.

Each trial's dropout rates are hparams; its drift accuracy, clean accuracy and
accuracy at every sigma of its drift report are metrics. `tensorboard --logdir
RUN/tb` shows them in the HPARAMS tab. TensorFlow-only, imported on demand.
"""

from pathlib import Path

OBJECTIVE_METRICS = ("drift_accuracy", "clean_accuracy")


def sigma_metric_name(sigma):
    return f"accuracy_sigma_{sigma:.2f}"


class HParamsLogger:
    """Writes the experiment config once and one HParams session per trial.

    Args:
        logdir: the root log directory (`RUN/tb`).
        hyperparameters: a `keras_tuner.HyperParameters` with the search space.
        sigmas: the sigma values of the per-trial drift reports.
    """

    def __init__(self, logdir, hyperparameters, sigmas=()):
        import tensorflow as tf
        from tensorboard.plugins.hparams import api as hp_api

        self._tf = tf
        self._hp_api = hp_api
        self.logdir = Path(logdir)
        self.sigmas = [float(s) for s in sigmas]
        self._hparams = []
        for hp in hyperparameters.space:
            if hasattr(hp, "min_value") and hasattr(hp, "max_value"):
                domain = hp_api.RealInterval(float(hp.min_value), float(hp.max_value))
            elif hasattr(hp, "values"):
                domain = hp_api.Discrete(list(hp.values))
            else:
                domain = None
            self._hparams.append(hp_api.HParam(hp.name, domain))
        metrics = [hp_api.Metric(name, display_name=name) for name in OBJECTIVE_METRICS]
        metrics += [
            hp_api.Metric(sigma_metric_name(s), display_name=f"accuracy at sigma={s:.2f}")
            for s in self.sigmas
        ]
        self.logdir.mkdir(parents=True, exist_ok=True)
        with tf.summary.create_file_writer(str(self.logdir)).as_default():
            hp_api.hparams_config(hparams=self._hparams, metrics=metrics)

    def log_trial(self, trial_id, values, metrics):
        """Logs one trial: `values` maps hparam names to values, `metrics` names to floats."""
        tf = self._tf
        known = {h.name for h in self._hparams}
        writer = tf.summary.create_file_writer(str(self.logdir / f"trial_{trial_id}"))
        with writer.as_default():
            self._hp_api.hparams({k: v for k, v in values.items() if k in known}, trial_id=str(trial_id))
            for name, value in metrics.items():
                tf.summary.scalar(name, float(value), step=0)
        writer.flush()
        writer.close()
