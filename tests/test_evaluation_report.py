"""DriftReport statistics, JSON/CSV files, terminal table and comparison plots."""

import csv
import io
import json

import numpy as np
import pytest

from bayesft_keras.evaluation import DriftReport
from bayesft_keras.evaluation import plot_reports


def _report(**kwargs):
    """Chips whose metrics are 0, 0.01, ..., 1.00 (101 chips) at one value, shuffled at the other."""
    ramp = np.linspace(0.0, 1.0, 101)
    defaults = dict(
        values=[0.0, 0.5],
        chip_metrics=np.stack([np.full(101, 0.93), np.random.default_rng(0).permutation(ramp)]),
        clean=0.93,
        model_name="m",
        threshold=0.9,
        chip_seeds=np.arange(202).reshape(2, 101),
        noise={"class_name": "LogNormalDrift", "config": {"sigma": 0.0}},
    )
    defaults.update(kwargs)
    return DriftReport(**defaults)


def test_statistics_of_known_chips():
    report = _report()
    row = report.summary()[1]
    # Linear-interpolation percentiles of 0..1 in steps of 0.01 are q / 100.
    for key, q in (("p5", 5), ("p50", 50), ("p95", 95)):
        assert row[key] == pytest.approx(q / 100, abs=1e-12)
    assert row["min"] == 0.0 and row["max"] == 1.0
    assert row["mean"] == pytest.approx(0.5)
    assert row["std"] == pytest.approx(np.sqrt(np.sum((np.linspace(0, 1, 101) - 0.5) ** 2) / 100))
    assert row["yield"] == 11 / 101  # 0.90, 0.91, ..., 1.00
    assert report.yield_at(0.5)[1] == 51 / 101
    # A row of identical chips has exactly that value as mean and no spread.
    assert report.summary()[0]["mean"] == 0.93 and report.summary()[0]["std"] == 0.0


def test_yield_needs_a_threshold():
    with pytest.raises(ValueError, match="threshold"):
        _report(threshold=None).yield_at()
    assert "yield" not in _report(threshold=None).summary()[0]


def test_json_round_trip(tmp_path):
    report = _report()
    text = report.to_json(tmp_path / "sub" / "r.json")
    for loaded in (DriftReport.from_json(text), DriftReport.from_json(tmp_path / "sub" / "r.json")):
        assert loaded.to_json() == text
        assert np.array_equal(loaded.chip_metrics, report.chip_metrics)
        assert np.array_equal(loaded.chip_seeds, report.chip_seeds)
        assert loaded.clean == report.clean and loaded.threshold == report.threshold
    assert json.loads(text)["summary"][1]["p50"] == pytest.approx(0.5)


def test_from_json_rejects_other_files(tmp_path):
    (tmp_path / "other.json").write_text('{"hello": 1}')
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="Not a bayesft-keras drift report"):
        DriftReport.from_json(tmp_path / "other.json")
    with pytest.raises(ValueError, match="Invalid JSON"):
        DriftReport.from_json(tmp_path / "broken.json")
    with pytest.raises(FileNotFoundError, match="missing.json"):
        DriftReport.from_json(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="shape"):
        DriftReport(values=[0.0, 1.0], chip_metrics=np.zeros((3, 2)), clean=1.0)


def test_csv_has_one_row_per_value(tmp_path):
    report = _report()
    text = report.to_csv(tmp_path / "r.csv")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert text == (tmp_path / "r.csv").read_text()
    assert [float(r["sigma"]) for r in rows] == [0.0, 0.5]
    for row, summary in zip(rows, report.summary()):
        for key, value in summary.items():
            assert float(row[key]) == value
        assert float(row["clean"]) == 0.93


def test_table_shows_the_summary():
    from rich.console import Console

    console = Console(record=True, width=120)
    console.print(_report().table())
    text = console.export_text()
    for word in ("sigma", "mean", "p5", "p95", "yield≥0.9", "clean accuracy: 0.9300", "0.5000"):
        assert word in text


def test_plot_compares_reports(tmp_path):
    import matplotlib.image

    other = _report(model_name="other", threshold=None, chip_metrics=_report().chip_metrics * 0.5)
    path = plot_reports([_report(), other], tmp_path / "plots" / "cmp.png", title="t")
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 500
    # The two curves are drawn in their own colours (C0 blue, C1 orange).
    pixels = image[..., :3].reshape(-1, 3)
    for colour in ((0.12, 0.47, 0.71), (1.0, 0.5, 0.05)):
        assert np.any(np.all(np.abs(pixels - colour) < 0.05, axis=1))
    single = _report().plot(tmp_path / "one.png")
    assert matplotlib.image.imread(single).shape == image.shape


def test_plot_rejects_mixed_parameters(tmp_path):
    with pytest.raises(ValueError, match="param"):
        plot_reports([_report(), _report(param="p_low")], tmp_path / "x.png")
    with pytest.raises(ValueError, match="labels"):
        plot_reports([_report()], tmp_path / "x.png", labels=["a", "b"])
