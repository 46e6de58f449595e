"""The BayesFT objective: accuracy on simulated drifted chips.

A trial's model is scored on the validation data by the evaluation engine: the
mean accuracy over `chips` chips at the target sigma (BayesFT: 30 chips at
sigma 1.5 for LeNet-5, 20 at 0.8 for the CIFAR-10 networks), or averaged over a
sigma range. Every trial is scored on the same chips (common random numbers),
so differences between trials are differences between models, not draws.
"""

import dataclasses

import numpy as np

OBJECTIVE_NAME = "drift_accuracy"


@dataclasses.dataclass
class DriftObjective:
    """How a trained model is scored.

    Args:
        sigma: the target drift sigma.
        chips: simulated chips per sigma value.
        sigma_range: (low, high) to average over `sigma_points` sigmas in that
            range instead of the single target sigma.
        sigma_points: number of sigmas in `sigma_range`.
        min_clean_accuracy: a model whose clean (noise-off) accuracy is below
            this scores 0 (the constraint is reported in its metrics).
        curve_sigmas: the sigmas of each trial's drift curve (logged as metrics).
        seed: seed of the chips.
        metric: the metric of a chip, as `evaluate_drift`'s (a task's
            `metric()`, e.g. mAP for `bayesft_keras.tasks.get("detection")`).
        param: the swept device parameter the "sigmas" are values of (None:
            the noise model's sigma; e.g. "t" for a device preset's time).
    """

    sigma: float = 0.8
    chips: int = 20
    sigma_range: tuple | None = None
    sigma_points: int = 5
    min_clean_accuracy: float = 0.0
    curve_sigmas: tuple = ()
    seed: int = 0
    metric: object = "accuracy"
    param: str | None = None

    def target_sigmas(self):
        if self.sigma_range is None:
            return [float(self.sigma)]
        low, high = self.sigma_range
        return [float(s) for s in np.linspace(low, high, self.sigma_points)]

    def sweep_sigmas(self):
        """All sigmas a trial is evaluated at: the target(s) first, then the rest of the curve.

        Targets first, so that their chips are those of
        `evaluate_drift(model, data, sigmas=targets, seed=seed)`: anyone can
        reproduce a trial's score from its saved model.
        """
        targets = [round(s, 10) for s in self.target_sigmas()]
        rest = sorted({round(float(s), 10) for s in self.curve_sigmas} - set(targets))
        return targets + rest

    def evaluate(self, model, x, y, evaluator=None):
        """Scores `model` on `(x, y)`; returns (metrics dict, drift report).

        `evaluator`: a `DriftEvaluator` of `model` to reuse (its compiled pass), or None.
        """
        from bayesft_keras.evaluation import evaluate_drift

        report = evaluate_drift(
            model,
            (x, y),
            values=self.sweep_sigmas(),
            param=self.param,
            chips=self.chips,
            seed=self.seed,
            metric=self.metric,
            progress=False,
            evaluator=evaluator,
        )
        return self.metrics_from_report(report), report

    def metrics_from_report(self, report):
        from bayesft_keras.tuning.hparams_log import sigma_metric_name

        means = dict(zip(_rounded(report.values), report.mean()))
        drift = float(np.mean([means[round(s, 10)] for s in self.target_sigmas()]))
        clean = float(report.clean)
        feasible = clean >= self.min_clean_accuracy
        metrics = {
            OBJECTIVE_NAME: drift if feasible else 0.0,
            "clean_accuracy": clean,
            "unconstrained_drift_accuracy": drift,
        }
        for s in self.curve_sigmas:
            metrics[sigma_metric_name(s)] = float(means[round(float(s), 10)])
        return metrics


def _rounded(values):
    return [round(float(v), 10) for v in values]
