"""The component study's statistics and statements on known per-seed numbers, and its variant grid."""

import csv
import io

import numpy as np
import pytest

from bayesft_keras.study import summary as summary_lib
from bayesft_keras.study.summary import Comparison
from bayesft_keras.study.summary import Run
from bayesft_keras.study.summary import VariantStats
from bayesft_keras.study.summary import sigma_ranges
from bayesft_keras.study.variants import BASELINE
from bayesft_keras.study.variants import DEFAULT_GRID
from bayesft_keras.study.variants import make_grid
from bayesft_keras.study.variants import parse_seeds
from bayesft_keras.study.variants import parse_sigmas

SIGMAS = np.array([0.0, 0.5, 1.0, 1.5])
# Per-seed mean accuracies (seeds x sigmas); every seed's spread is 0.02, so
# the standard error of a mean is 0.02 / sqrt(3) and that of a difference
# 0.02 * sqrt(2/3) = 0.01633.
BASELINE_MEANS = [[0.90, 0.80, 0.50, 0.20], [0.92, 0.82, 0.52, 0.22], [0.94, 0.84, 0.54, 0.24]]
# -0.01 (z=-0.6), +0.05 (z=3.06), +0.20, +0.25.
DROPOUT_MEANS = [[0.89, 0.85, 0.70, 0.45], [0.91, 0.87, 0.72, 0.47], [0.93, 0.89, 0.74, 0.49]]
# 0, -0.10, -0.12, +0.01.
BATCH_MEANS = [[0.90, 0.70, 0.38, 0.21], [0.92, 0.72, 0.40, 0.23], [0.94, 0.74, 0.42, 0.25]]
# +0.01, +0.005, -0.005, +0.015: all within 1 standard error.
TANH_MEANS = [[0.91, 0.805, 0.495, 0.215], [0.93, 0.825, 0.515, 0.235], [0.95, 0.845, 0.535, 0.255]]
SE_DIFF = 0.02 * np.sqrt(2 / 3)


def _stats(component, variant, label, seed_means, chips=4, sigmas=SIGMAS):
    """VariantStats of runs whose chips all score the seed's mean (no chip spread)."""
    runs = [
        Run(component, variant, label, seed, np.asarray(sigmas, float),
            np.repeat(np.asarray(means, float)[:, None], chips, axis=1), clean=means[0])
        for seed, means in enumerate(seed_means)
    ]
    return VariantStats.from_runs(runs)


def _results(k=2.0):
    stats = {
        "baseline": _stats("baseline", "baseline", "baseline", BASELINE_MEANS),
        "dropout": [_stats("dropout", "rate_0.5", "dropout 0.5", DROPOUT_MEANS)],
        "normalization": [_stats("normalization", "batch", "batch norm", BATCH_MEANS)],
        "activation": [_stats("activation", "tanh", "tanh", TANH_MEANS)],
    }
    labels = {
        "dropout": "no dropout (baseline)",
        "normalization": "no normalization (baseline)",
        "activation": "relu (baseline)",
    }
    return summary_lib.compare_components(stats, labels, k=k)


def test_aggregation_over_seeds():
    stats = _stats("dropout", "rate_0.5", "dropout 0.5", DROPOUT_MEANS)
    np.testing.assert_allclose(stats.mean(), [0.91, 0.87, 0.72, 0.47], atol=1e-12)
    np.testing.assert_allclose(stats.std(), 0.02, atol=1e-12)
    np.testing.assert_allclose(stats.se(), 0.02 / np.sqrt(3), atol=1e-12)
    assert stats.spread_over == "seeds" and stats.num_seeds == 3 and stats.chips == 4


def test_statements_follow_known_numbers():
    dropout, batch, tanh = (r.comparisons[0] for r in _results())
    np.testing.assert_allclose(dropout.diff, [-0.01, 0.05, 0.20, 0.25], atol=1e-12)
    np.testing.assert_allclose(dropout.se, SE_DIFF, atol=1e-12)
    assert dropout.verdicts == ("no significant difference", "helps", "helps", "helps")
    assert dropout.statement() == (
        "dropout 0.5 helps at σ ≥ 0.5 (+0.250 ± 0.016 at σ = 1.5); "
        "no significant difference at σ = 0."
    )
    assert batch.statement() == (
        "batch norm hurts at 0.5 ≤ σ ≤ 1 (-0.120 ± 0.016 at σ = 1); "
        "no significant difference at σ = 0, σ = 1.5."
    )
    assert tanh.statement() == (
        "tanh no significant difference at any σ (largest difference +0.015 ± 0.016 at σ = 1.5)."
    )


def test_k_sets_the_threshold():
    # +0.05 is 3.06 standard errors: significant for k=3, not for k=3.1.
    assert _results(k=3.0)[0].comparisons[0].verdicts[1] == "helps"
    dropout = _results(k=3.1)[0].comparisons[0]
    assert dropout.verdicts[1] == "no significant difference"
    assert dropout.statement() == (
        "dropout 0.5 helps at σ ≥ 1 (+0.250 ± 0.016 at σ = 1.5); "
        "no significant difference at σ ≤ 0.5."
    )


def test_component_verdicts():
    dropout, normalization, activation = _results()
    assert dropout.verdict == "dropout 0.5 helps at some σ"
    assert normalization.verdict == "batch norm hurts at some σ"
    assert activation.verdict == "no significant difference at any σ"
    both = summary_lib.component_verdict(
        dropout.comparisons + normalization.comparisons + dropout.comparisons
    )
    assert both == "dropout 0.5, dropout 0.5 help at some σ; batch norm hurts at some σ"


def test_one_seed_uses_the_chip_sampling_error():
    sigmas = [1.0]
    base = VariantStats.from_runs([Run("baseline", "baseline", "baseline", 0, np.array(sigmas),
                                       np.array([[0.5, 0.6, 0.7, 0.8]]), 0.9)])
    var = VariantStats.from_runs([Run("dropout", "rate_0.5", "dropout 0.5", 0, np.array(sigmas),
                                      np.array([[0.9, 1.0, 0.8, 0.9]]), 0.9)])
    assert base.spread_over == "chips"
    np.testing.assert_allclose(base.std(), np.std([0.5, 0.6, 0.7, 0.8], ddof=1))
    np.testing.assert_allclose(base.se(), np.std([0.5, 0.6, 0.7, 0.8], ddof=1) / 2)
    comparison = Comparison.of(var, base, k=2.0)
    expected_se = np.sqrt(np.var([0.5, 0.6, 0.7, 0.8], ddof=1) / 4 + np.var([0.9, 1.0, 0.8, 0.9], ddof=1) / 4)
    np.testing.assert_allclose(comparison.se, expected_se)
    np.testing.assert_allclose(comparison.diff, 0.25)
    assert comparison.verdicts == ("helps",)  # z = 3.27
    assert Comparison.of(var, base, k=3.5).verdicts == ("no significant difference",)


def test_no_spread_is_not_judged():
    # One seed at sigma 0: every chip is the clean model, so no spread is measured.
    sigmas = np.array([0.0, 1.0])
    base = VariantStats.from_runs([Run("baseline", "baseline", "baseline", 0, sigmas,
                                       np.array([[0.9, 0.9, 0.9], [0.5, 0.6, 0.7]]), 0.9)])
    var = VariantStats.from_runs([Run("dropout", "rate_0.5", "dropout 0.5", 0, sigmas,
                                      np.array([[0.8, 0.8, 0.8], [0.6, 0.6, 0.6]]), 0.8)])
    comparison = Comparison.of(var, base, k=2.0)
    assert comparison.verdicts == ("not judged", "no significant difference")
    assert comparison.statement() == (
        "dropout 0.5 no significant difference at σ = 1; "
        "not judged at σ = 0 (difference -0.100 at σ = 0, no spread measured to judge it by)."
    )
    result = summary_lib.ComponentResult("dropout", base, [var], [comparison])
    assert result.verdict == "no significant difference at any σ"
    assert summary_lib.chance_note([comparison]).startswith("0 of 1 comparisons")


def test_seeds_that_agree_by_chance_keep_the_chip_error():
    # Two seeds with identical chip means but spread chips: the seed spread is
    # 0, the standard error is the chip-sampling error.
    chips = np.array([[0.5, 0.7]])
    runs = [Run("baseline", "baseline", "baseline", s, np.array([1.0]), chips, 0.9) for s in (0, 1)]
    stats = VariantStats.from_runs(runs)
    np.testing.assert_allclose(stats.std(), 0.0)
    np.testing.assert_allclose(stats.se(), np.sqrt(np.var([0.5, 0.7], ddof=1) / (2 * 2)))


def test_sigma_ranges():
    sigmas = [0, 0.25, 0.5, 0.75, 1.0]
    assert sigma_ranges(sigmas, [0, 1, 2, 3, 4]) == "every σ"
    assert sigma_ranges(sigmas, [3, 4]) == "σ ≥ 0.75"
    assert sigma_ranges(sigmas, [0, 1]) == "σ ≤ 0.25"
    assert sigma_ranges(sigmas, [2]) == "σ = 0.5"
    assert sigma_ranges(sigmas, [1, 2, 3]) == "0.25 ≤ σ ≤ 0.75"
    assert sigma_ranges(sigmas, [0, 2, 3, 4]) == "σ = 0, σ ≥ 0.5"


def test_csv_holds_every_number_and_its_verdict():
    results = _results()
    rows = list(csv.DictReader(io.StringIO(summary_lib.csv_text(results))))
    # 3 components x (baseline + 1 variant) x 4 sigmas.
    assert len(rows) == 3 * 2 * 4
    dropout = [r for r in rows if r["component"] == "dropout" and r["variant"] == "rate_0.5"]
    np.testing.assert_allclose([float(r["mean"]) for r in dropout], np.mean(DROPOUT_MEANS, axis=0))
    np.testing.assert_allclose([float(r["std"]) for r in dropout], np.std(DROPOUT_MEANS, axis=0, ddof=1))
    np.testing.assert_allclose([float(r["diff"]) for r in dropout], [-0.01, 0.05, 0.20, 0.25], atol=1e-12)
    assert [r["verdict"] for r in dropout] == ["no significant difference", "helps", "helps", "helps"]
    base = [r for r in rows if r["component"] == "normalization" and r["variant"] == "baseline"]
    assert {r["label"] for r in base} == {"no normalization (baseline)"}
    assert {r["verdict"] for r in base} == {"baseline"}


def test_markdown_table_and_summary():
    results = _results()
    table = summary_lib.markdown_table(results)
    lines = table.splitlines()
    assert lines[0] == "| component | variant | σ = 0 | σ = 0.5 | σ = 1 | σ = 1.5 |"
    assert "| dropout | dropout 0.5 | 0.910 ± 0.020 | 0.870 ± 0.020 ▲ | 0.720 ± 0.020 ▲ | 0.470 ± 0.020 ▲ |" in lines
    assert "| normalization | batch norm | 0.920 ± 0.020 | 0.720 ± 0.020 ▼ | 0.400 ± 0.020 ▼ | 0.230 ± 0.020 |" in lines
    assert "| dropout | no dropout (baseline) | 0.920 ± 0.020 | 0.820 ± 0.020 | 0.520 ± 0.020 | 0.220 ± 0.020 |" in lines
    assert "standard deviation over 3 seeds" in table

    text = summary_lib.summary_markdown(
        results, {"title": "Component study: test", "setup": "Known numbers."},
        skipped={"depth": "not applicable to lenet5"},
    )
    assert text.startswith("# Component study: test\n")
    assert "k = 2" in text
    for result in results:
        assert f"## {result.component.capitalize()}: {result.verdict}" in text
        for comparison in result.comparisons:
            assert f"- {comparison.statement()}" in text
    assert "## Depth: skipped" in text
    # 3 variants x 4 sigmas, 5 significant; 12 * P(|Z| > 2) = 0.55 expected by chance.
    assert "5 of 12 comparisons (variant × σ) are significant; if no variant differed from the " \
        "baseline, about 0.5 would be by chance at k = 2" in text


def test_table_shows_at_most_seven_sigmas():
    sigmas = np.linspace(0, 1.5, 31)
    assert summary_lib.table_indices(sigmas) == [0, 5, 10, 15, 20, 25, 30]
    assert summary_lib.table_indices(sigmas[:5]) == [0, 1, 2, 3, 4]


# -- the variant grid --------------------------------------------------------------


def test_default_grid_changes_one_setting_per_variant():
    grid = make_grid()
    assert grid.components == ("dropout", "normalization", "depth", "activation")
    assert grid.baseline.kwargs() == BASELINE
    for component, variants in grid.variants.items():
        assert [v.value for v in variants] == [
            v for v in DEFAULT_GRID[component] if v != BASELINE[component]
        ]
        for variant in variants:
            changed = {k for k, v in variant.kwargs().items() if v != BASELINE[k]}
            assert changed == {component}
    assert len(grid.all_variants()) == 1 + 3 + 3 + 2 + 4
    paths = [v.path(0) for v in grid.all_variants()]
    assert len(set(paths)) == len(paths)
    assert "variants/dropout/rate_0.5_seed0.json" in paths
    assert "variants/baseline/baseline_seed0.json" in paths


def test_grid_settings():
    grid = make_grid("dropout,activation", grid={"dropout": [0.5]}, baseline={"normalization": "layer"})
    assert grid.baseline.kwargs() == {"dropout": 0.0, "normalization": "layer", "depth": 3, "activation": "relu"}
    assert [v.kwargs() for v in grid.variants["dropout"]] == [
        {"dropout": 0.5, "normalization": "layer", "depth": 3, "activation": "relu"}
    ]
    # A run is the same whichever other components are studied (resume reuses it).
    assert make_grid("dropout").baseline == make_grid("activation,dropout").baseline
    assert make_grid("dropout").variants["dropout"] == make_grid(None).variants["dropout"]
    # Without a depth option the settings have no depth.
    assert "depth" not in make_grid("dropout", supports_depth=False).baseline.kwargs()


def test_depth_is_skipped_or_refused_without_a_depth_option():
    grid = make_grid(None, supports_depth=False, arch="lenet5")
    assert "depth" not in grid.components
    assert "lenet5" in grid.skipped["depth"]
    with pytest.raises(ValueError, match="depth component is not applicable to lenet5"):
        make_grid("dropout,depth", supports_depth=False, arch="lenet5")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"components": "dropout,width"}, r"Unknown component\(s\) \['width'\]. Valid components: dropout"),
        ({"components": ""}, r"`components` is empty"),
        ({"components": 3}, r"`components` must be names"),
        ({"components": "dropout", "grid": {"dropout": [1.0]}}, r"dropout value must be a rate in \[0, 1\). Received: 1.0"),
        ({"components": "depth", "grid": {"depth": [3]}}, r"no value besides the baseline's"),
        ({"components": "dropout", "grid": {"depth": [6]}}, r"not studied"),
        ({"baseline": {"width": 2}}, r"`baseline` may set"),
    ],
)
def test_grid_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_grid(**kwargs)


def test_seeds_and_sigmas():
    assert parse_seeds(3) == (0, 1, 2)
    assert parse_seeds([4, 7]) == (4, 7)
    assert parse_sigmas([1.5, 0, 0.5]) == (0.0, 0.5, 1.5)
    for bad in (0, -1, [], [1, 1], [1.5], True):
        with pytest.raises(ValueError, match="`seeds`"):
            parse_seeds(bad)
    for bad in ([], [-0.1], [float("nan")], "abc", [0.5, 0.5]):
        with pytest.raises(ValueError, match="`sigmas`"):
            parse_sigmas(bad)
