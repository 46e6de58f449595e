"""Aggregation over seeds, the accuracy table, and the statements computed from it.

Each (variant, seed) run gives the accuracy of `chips` simulated chips at
every sigma. Per variant and sigma:

- the *mean* is the mean over seeds of each seed's chip mean;
- the *spread* is the sample standard deviation of those seed means (with a
  single seed: the standard deviation over chips);
- the *standard error* of the mean is `spread / sqrt(seeds)`, but never less
  than the chip-sampling error `sqrt(mean chip variance / (seeds * chips))`
  (a floor: two or three seeds can agree by chance).

A variant is compared to the baseline at each sigma by the difference of means
`d` and its standard error `se = sqrt(se_variant**2 + se_baseline**2)`: it
*helps* where `d > k * se`, *hurts* where `d < -k * se`, and otherwise
there is *no significant difference*. Where `se` is 0 (one seed, and all
chips alike, as at sigma 0) the difference is *not judged*.
"""

import csv
import dataclasses
import io
import math

import numpy as np

from bayesft_keras.study.variants import BASELINE_NAME
from bayesft_keras.study.variants import PAPER_FINDINGS

HELPS, HURTS, NOT_SIGNIFICANT = "helps", "hurts", "no significant difference"
# Where the difference has no measured spread (one seed, and every chip alike,
# as at σ = 0): nothing to judge it against.
NOT_JUDGED = "not judged"
# At most this many sigmas go into the markdown table (all are in the CSV).
TABLE_COLUMNS = 7
# Table markers of a significant difference from the baseline.
MARKERS = {HELPS: " ▲", HURTS: " ▼", NOT_SIGNIFICANT: "", NOT_JUDGED: ""}


@dataclasses.dataclass(frozen=True)
class Run:
    """One (variant, seed) result: the metric of every chip at every sigma."""

    component: str
    variant: str
    label: str
    seed: int
    sigmas: np.ndarray
    chip_metrics: np.ndarray  # (sigmas, chips)
    clean: float

    @classmethod
    def from_record(cls, record):
        """From a run record as the runner stores it (its `report` is a DriftReport dict)."""
        report = record["report"]
        return cls(
            component=record["component"],
            variant=record["variant"],
            label=record["label"],
            seed=int(record["seed"]),
            sigmas=np.asarray(report["values"], dtype="float64"),
            chip_metrics=np.asarray(report["chip_metrics"], dtype="float64"),
            clean=float(report["clean"]),
        )


@dataclasses.dataclass
class VariantStats:
    """One variant's metric per sigma, aggregated over seeds.

    Attributes:
        component, variant, label: as the runs' (component "baseline" for the baseline).
        sigmas: the sigmas, shape `(V,)`.
        seeds: the seeds, in order.
        seed_means: each seed's mean over chips, shape `(S, V)`.
        chip_vars: each seed's sample variance over chips, shape `(S, V)`
            (0 with a single chip).
        chips: chips per sigma.
        clean: each seed's metric with noise off, shape `(S,)`.
    """

    component: str
    variant: str
    label: str
    sigmas: np.ndarray
    seeds: tuple
    seed_means: np.ndarray
    chip_vars: np.ndarray
    chips: int
    clean: np.ndarray

    @classmethod
    def from_runs(cls, runs, label=None):
        """Aggregates the runs of one variant (one per seed, same sigmas and chips)."""
        runs = sorted(runs, key=lambda r: r.seed)
        if not runs:
            raise ValueError("No runs to aggregate.")
        first = runs[0]
        for run in runs[1:]:
            if run.chip_metrics.shape != first.chip_metrics.shape or not np.allclose(
                run.sigmas, first.sigmas
            ):
                raise ValueError(
                    f"Runs of {first.label} differ in sigmas or chips (seed {first.seed}: "
                    f"{first.chip_metrics.shape}, seed {run.seed}: {run.chip_metrics.shape})."
                )
        metrics = np.stack([r.chip_metrics for r in runs])  # (S, V, C)
        chips = metrics.shape[2]
        # Offsets from each row's minimum: equal chips (sigma 0) give exactly 0 variance.
        offsets = metrics - metrics.min(axis=2, keepdims=True)
        return cls(
            component=first.component,
            variant=first.variant,
            label=label or first.label,
            sigmas=first.sigmas,
            seeds=tuple(r.seed for r in runs),
            seed_means=metrics.mean(axis=2),
            chip_vars=offsets.var(axis=2, ddof=1) if chips > 1 else np.zeros(metrics.shape[:2]),
            chips=chips,
            clean=np.array([r.clean for r in runs]),
        )

    @property
    def num_seeds(self):
        return len(self.seeds)

    @property
    def spread_over(self):
        """What `std` is taken over: "seeds" (two or more seeds) or "chips" (one seed)."""
        return "seeds" if self.num_seeds > 1 else "chips"

    def mean(self):
        """Mean over seeds of the chip means, per sigma."""
        return self.seed_means.mean(axis=0)

    def std(self):
        """Standard deviation over seeds (over chips with a single seed), per sigma."""
        if self.num_seeds > 1:
            return self.seed_means.std(axis=0, ddof=1)
        return np.sqrt(self.chip_vars[0])

    def se(self):
        """Standard error of `mean`, per sigma (see the module docstring)."""
        chip_term = self.chip_vars.mean(axis=0) / (self.num_seeds * self.chips)
        if self.num_seeds < 2:
            return np.sqrt(chip_term)
        seed_term = self.seed_means.var(axis=0, ddof=1) / self.num_seeds
        return np.sqrt(np.maximum(seed_term, chip_term))


@dataclasses.dataclass
class Comparison:
    """A variant against the baseline at every sigma.

    Attributes:
        variant: the variant's `VariantStats`; baseline: the baseline's.
        k: how many standard errors make a difference significant.
        diff: mean difference (variant - baseline), per sigma.
        se: standard error of `diff`, per sigma.
        verdicts: `HELPS`, `HURTS`, `NOT_SIGNIFICANT` or `NOT_JUDGED`, per sigma.
    """

    variant: VariantStats
    baseline: VariantStats
    k: float
    diff: np.ndarray
    se: np.ndarray
    verdicts: tuple

    @classmethod
    def of(cls, variant, baseline, k=2.0):
        if not np.allclose(variant.sigmas, baseline.sigmas):
            raise ValueError(f"{variant.label} and the baseline were evaluated at different sigmas.")
        diff = variant.mean() - baseline.mean()
        se = np.sqrt(variant.se() ** 2 + baseline.se() ** 2)
        verdicts = tuple(
            NOT_JUDGED if s == 0 else HELPS if d > k * s else HURTS if d < -k * s else NOT_SIGNIFICANT
            for d, s in zip(diff, se)
        )
        return cls(variant, baseline, float(k), diff, se, verdicts)

    @property
    def sigmas(self):
        return self.variant.sigmas

    def where(self, verdict):
        """Indices of the sigmas with `verdict`."""
        return [i for i, v in enumerate(self.verdicts) if v == verdict]

    def _region(self, verdict, detail):
        """`"<verdict> at <sigmas> (<detail(i)>)"`, `i` the sigma of its largest difference; None if none."""
        indices = self.where(verdict)
        if not indices:
            return None
        i = max(indices, key=lambda j: abs(self.diff[j]))
        return f"{verdict} at {sigma_ranges(self.sigmas, indices)} ({detail(i)})"

    def statement(self):
        """One sentence: where the variant helps, hurts or makes no significant difference.

        E.g. `"dropout 0.5 helps at σ ≥ 0.75 (+0.214 ± 0.031 at σ = 1.5);
        hurts at σ = 0 (-0.010 ± 0.003 at σ = 0); no significant difference
        at 0.25 ≤ σ ≤ 0.5."`: each significant region gives its largest
        difference ± its standard error.
        """
        def measured(i):
            return f"{self.diff[i]:+.3f} ± {self.se[i]:.3f} at σ = {self.sigmas[i]:g}"

        parts = [self._region(HELPS, measured), self._region(HURTS, measured)]
        rest = self.where(NOT_SIGNIFICANT)
        if len(rest) == len(self.sigmas):
            i = int(np.argmax(np.abs(self.diff)))
            parts.append(f"{NOT_SIGNIFICANT} at any σ (largest difference {measured(i)})")
        elif rest:
            parts.append(f"{NOT_SIGNIFICANT} at {sigma_ranges(self.sigmas, rest)}")
        parts.append(self._region(
            NOT_JUDGED,
            lambda i: f"difference {self.diff[i]:+.3f} at σ = {self.sigmas[i]:g}, no spread measured to judge it by",
        ))
        return f"{self.variant.label} " + "; ".join(p for p in parts if p) + "."


def sigma_ranges(sigmas, indices):
    """Indices into the sorted `sigmas` -> e.g. "σ ≥ 0.75", "σ ≤ 0.25, σ = 1",
    "0.25 ≤ σ ≤ 0.5", "every σ"."""
    indices = sorted(indices)
    last = len(sigmas) - 1
    runs = []
    start = previous = indices[0]
    for i in indices[1:] + [None]:
        if i is not None and i == previous + 1:
            previous = i
            continue
        runs.append((start, previous))
        if i is not None:
            start = previous = i
    texts = []
    for lo, hi in runs:
        if lo == 0 and hi == last:
            texts.append("every σ")
        elif lo == hi:
            texts.append(f"σ = {sigmas[lo]:g}")
        elif hi == last:
            texts.append(f"σ ≥ {sigmas[lo]:g}")
        elif lo == 0:
            texts.append(f"σ ≤ {sigmas[hi]:g}")
        else:
            texts.append(f"{sigmas[lo]:g} ≤ σ ≤ {sigmas[hi]:g}")
    return ", ".join(texts)


def component_verdict(comparisons):
    """One phrase for a component: which variants help or hurt at some sigma.

    E.g. "dropout 0.5 helps at some σ; dropout 0.8 hurts at some σ", or "no
    significant difference at any σ".
    """
    parts = []
    for verdict, plural in ((HELPS, "help"), (HURTS, "hurt")):
        names = [c.variant.label for c in comparisons if verdict in c.verdicts]
        if names:
            parts.append(f"{', '.join(names)} {verdict if len(names) == 1 else plural} at some σ")
    return "; ".join(parts) if parts else f"{NOT_SIGNIFICANT} at any σ"


def chance_note(comparisons):
    """How many (variant, sigma) comparisons are significant, and how many would be by chance alone."""
    total = sum(v != NOT_JUDGED for c in comparisons for v in c.verdicts)
    flagged = sum(v in (HELPS, HURTS) for c in comparisons for v in c.verdicts)
    k = comparisons[0].k if comparisons else 2.0
    expected = total * math.erfc(k / math.sqrt(2))
    return (
        f"{flagged} of {total} comparisons (variant × σ) are significant; if no variant differed "
        f"from the baseline, about {expected:.1f} would be by chance at k = {k:g} (normal "
        "approximation; more with few seeds), so read a verdict at an isolated σ with care."
    )


@dataclasses.dataclass
class ComponentResult:
    """A component's baseline, variants and their comparisons."""

    component: str
    baseline: VariantStats
    variants: list
    comparisons: list

    @property
    def verdict(self):
        return component_verdict(self.comparisons)

    def rows(self):
        """`(stats, comparison or None)` for the baseline, then every variant."""
        return [(self.baseline, None)] + list(zip(self.variants, self.comparisons))


def compare_components(stats, baseline_labels, k=2.0):
    """`{component: [VariantStats, ...]}` and the baseline's stats -> `ComponentResult`s.

    Args:
        stats: `{"baseline": VariantStats, component: [VariantStats, ...]}`.
        baseline_labels: `{component: label}`: how the baseline is called
            in each component's rows (e.g. "no dropout (baseline)").
        k: standard errors for a significant difference.
    """
    base = stats[BASELINE_NAME]
    results = []
    for component, variants in stats.items():
        if component == BASELINE_NAME:
            continue
        baseline = dataclasses.replace(base, label=baseline_labels[component])
        comparisons = [Comparison.of(v, baseline, k) for v in variants]
        results.append(ComponentResult(component, baseline, list(variants), comparisons))
    return results


def table_indices(sigmas, columns=TABLE_COLUMNS):
    """Which sigmas the markdown table shows: all, or `columns` spread evenly, ends included."""
    if len(sigmas) <= columns:
        return list(range(len(sigmas)))
    return sorted(set(np.round(np.linspace(0, len(sigmas) - 1, columns)).astype(int).tolist()))


def csv_text(results):
    """Every component, variant and sigma: mean, std, standard error, and the comparison."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([
        "component", "variant", "label", "sigma", "seeds", "chips", "mean", "std", "spread_over",
        "se", "diff", "diff_se", "verdict",
    ])
    for result in results:
        for stats, comparison in result.rows():
            mean, std, se = stats.mean(), stats.std(), stats.se()
            for i, sigma in enumerate(stats.sigmas):
                if comparison is None:
                    diff, diff_se, verdict = 0.0, 0.0, BASELINE_NAME
                else:
                    diff, diff_se, verdict = (
                        comparison.diff[i], comparison.se[i], comparison.verdicts[i]
                    )
                writer.writerow([
                    result.component, stats.variant, stats.label, repr(float(sigma)),
                    stats.num_seeds, stats.chips, repr(float(mean[i])), repr(float(std[i])),
                    stats.spread_over, repr(float(se[i])), repr(float(diff)), repr(float(diff_se)),
                    verdict,
                ])
    return buffer.getvalue()


def markdown_table(results):
    """Mean ± std of the metric at selected sigmas, one row per variant, grouped by component."""
    sigmas = results[0].baseline.sigmas
    columns = table_indices(sigmas)
    k = results[0].comparisons[0].k if results[0].comparisons else 2.0
    header = "| component | variant | " + " | ".join(f"σ = {sigmas[i]:g}" for i in columns) + " |"
    lines = [header, "|---|---|" + "---:|" * len(columns)]
    for result in results:
        for stats, comparison in result.rows():
            mean, std = stats.mean(), stats.std()
            cells = []
            for i in columns:
                marker = MARKERS[comparison.verdicts[i]] if comparison is not None else ""
                cells.append(f"{mean[i]:.3f} ± {std[i]:.3f}{marker}")
            lines.append(f"| {result.component} | {stats.label} | " + " | ".join(cells) + " |")
    base = results[0].baseline
    spread = (
        f"standard deviation over {base.num_seeds} seeds" if base.spread_over == "seeds"
        else f"standard deviation over {base.chips} chips (one seed)"
    )
    lines += [
        "",
        f"Mean accuracy ± {spread}; {base.chips} chips per σ and seed. "
        f"▲ / ▼: higher / lower than the baseline by more than {k:g} standard errors.",
    ]
    return "\n".join(lines) + "\n"


def summary_markdown(results, context, skipped=None):
    """The study's summary: settings, method, and per component its computed statements.

    Args:
        results: the `ComponentResult`s.
        context: `{"title", "setup"}`: a heading and a sentence on how the
            networks were trained and evaluated.
        skipped: `{component: reason}` for components left out.
    """
    base = results[0].baseline if results else None
    k = results[0].comparisons[0].k if results and results[0].comparisons else 2.0
    lines = [f"# {context['title']}", "", context["setup"], ""]
    if base is not None:
        spread = (
            f"the standard deviation of the {base.num_seeds} per-seed means / √{base.num_seeds}, "
            "at least the chip-sampling error"
            if base.num_seeds > 1
            else "the chip-sampling error only (one seed: training variability is not counted)"
        )
        lines += [
            f"A variant **helps** (or **hurts**) at a σ where its mean accuracy is above (or below) "
            f"the baseline's by more than k = {k:g} standard errors of the difference, "
            f"sqrt(se_variant² + se_baseline²); the standard error of a mean is {spread}. "
            "Differences are in accuracy (fraction), shown as difference ± standard error.",
            "",
            chance_note([c for r in results for c in r.comparisons]),
            "",
        ]
    for result in results:
        lines += [
            f"## {result.component.capitalize()}: {result.verdict}",
            "",
            f"Baseline: {result.baseline.label.removesuffix(' (baseline)')}.",
            "",
        ]
        lines += [f"- {c.statement()}" for c in result.comparisons]
        lines += ["", f"BayesFT paper (MLP on MNIST): {PAPER_FINDINGS[result.component]}.", ""]
    for component, reason in (skipped or {}).items():
        lines += [f"## {component.capitalize()}: skipped", "", f"{reason.capitalize()}.", ""]
    return "\n".join(lines).rstrip() + "\n"
