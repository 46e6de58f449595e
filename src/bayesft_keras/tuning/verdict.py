"""Whether BayesFT helped, in words: the paired gain over a baseline, and networks that never learned.

Every method's report is measured on the same chips (the same chip seeds at
every sigma), so the gain of BayesFT over a baseline is read chip by chip: its
standard error is that of the per-chip differences, far smaller than the
spread of either method across chips.
"""

import dataclasses

import numpy as np

# A method "did not learn" when its clean accuracy is below this many times chance.
NOT_LEARNED_FACTOR = 2.0
# A gain counts as shown when it is this many standard errors from zero.
SIGNIFICANT_SE = 3.0


@dataclasses.dataclass(frozen=True)
class PairedGain:
    """`mean(a - b)` over chips at one sigma, with the standard error of that mean."""

    sigma: float
    gain: float
    stderr: float
    chips: int

    @property
    def z(self):
        return self.gain / self.stderr if self.stderr > 0 else float("inf") * np.sign(self.gain)


def _row(report, sigma):
    return int(np.argmin(np.abs(np.asarray(report.values) - sigma)))


def paired_gain(report, baseline, sigma):
    """The per-chip gain of `report` over `baseline` (two `DriftReport`) at `sigma`.

    Chips are paired by their seed where both reports hold the same seeds, else
    by position (the evaluator draws the same seeds for the same sweep seed).
    """
    a = report.chip_metrics[_row(report, sigma)]
    b = baseline.chip_metrics[_row(baseline, sigma)]
    n = min(len(a), len(b))
    diff = a[:n] - b[:n]
    stderr = float(diff.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return PairedGain(float(sigma), float(diff.mean()), stderr, n)


def did_not_learn(report, chance):
    """Whether a report's clean accuracy is near chance (below `NOT_LEARNED_FACTOR` x chance)."""
    return chance is not None and report.clean < NOT_LEARNED_FACTOR * chance


def verdict_lines(result, titles):
    """Sentences on a `SearchResult`: BayesFT against each baseline, and any method that never
    learned. `titles` maps method names to their display names."""
    lines = []
    sigma = result.config.sigma
    chance = getattr(result, "chance", None)
    best = result.methods.get("bayesft")
    for method, other in result.methods.items():
        if method == "bayesft" or best is None:
            continue
        g = paired_gain(best.report, other.report, sigma)
        if g.gain > 0 and g.z > SIGNIFICANT_SE:
            word = "BayesFT helped"
        elif g.gain < 0 and -g.z > SIGNIFICANT_SE:
            word = "BayesFT did worse"
        else:
            word = "No clear difference"
        lines.append(
            f"{word}: against {titles[method]} at sigma={sigma:g}, the gain on the test split is "
            f"{g.gain:+.4f} ± {g.stderr:.4f} (standard error of the paired difference over "
            f"{g.chips} chips; {abs(g.z):.1f} SE)."
        )
    if best is not None and best.trials < result.config.trials:
        lines.append(
            f"Warning: only {best.trials} of the {result.config.trials} BayesFT trials finished; the "
            "others failed (their kt/bayesft/trial_*/trial.json hold the error) or the search space "
            "ran out. The best rates are the best of those that finished."
        )
    for method, r in result.methods.items():
        if did_not_learn(r.report, chance):
            lines.append(
                f"Warning: {titles[method]} did not learn: its clean test accuracy "
                f"{r.report.clean:.3f} is near chance ({chance:.3f}); its drift accuracy means "
                "nothing. Train longer, lower the dropout range or warm-start (warm_start_epochs)."
            )
    return lines
