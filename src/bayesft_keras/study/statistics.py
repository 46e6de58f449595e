"""From the per-run records to the study's statistics: each variant over its seeds, compared to the baseline."""

from bayesft_keras.study import summary as summary_lib
from bayesft_keras.study.variants import BASELINE_NAME


def variant_stats(variant, seeds, records):
    """The `VariantStats` of `variant` over `seeds` (`records`: `{(variant, seed): record}`)."""
    runs = [summary_lib.Run.from_record(records[variant, s]) for s in seeds]
    return summary_lib.VariantStats.from_runs(runs)


def compare(grid, seeds, records, k):
    """One `ComponentResult` per studied component of `grid`: its variants against the baseline."""
    stats = {BASELINE_NAME: variant_stats(grid.baseline, seeds, records)}
    for component in grid.components:
        stats[component] = [variant_stats(v, seeds, records) for v in grid.variants[component]]
    labels = {c: grid.baseline_label(c) for c in grid.components}
    return summary_lib.compare_components(stats, labels, k=k)
