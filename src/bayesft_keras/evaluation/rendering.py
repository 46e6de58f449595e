"""Drawing drift reports: PNG plots (several models on one plot) and terminal tables.

Works on any object with a `DriftReport`'s public attributes and summaries
(`values`, `mean()`, `percentile(q)`, `summary()`, ...): it does not
import the report module, which keeps the report a plain data class.
"""

import io
import os

import numpy as np

from bayesft_keras.utils import files

# Axis labels with what the numbers are: σ is unitless (the spread of ln(w'/w)).
PARAM_LABELS = {"sigma": "drift σ (unitless: w' = w·exp(θ), θ ~ N(0, σ²))"}
_PARAM_SYMBOLS = {"sigma": "σ"}
_METRIC_LABELS = {"accuracy": "accuracy (fraction correct, 0–1)"}


def plot_reports(reports, path, labels=None, title=None, chance=None, target=None):
    """Writes a PNG comparing drift reports: mean metric with its p5–p95 band.

    Each report is drawn as its mean across chips against the swept value,
    with the band between the 5th and 95th percentile of chips and its clean
    (noise-off) metric as a dotted line; a report's yield threshold, if set,
    is drawn in grey. A metric in [0, 1] (accuracy, mAP) gets a fixed 0–1
    axis, so that plots of different runs compare by eye.

    Args:
        reports: a `DriftReport` or a list of them, sweeping the same
            parameter with the same metric.
        path: the PNG file to write (folders are created).
        labels: one legend label per report (default: model names, made
            unique).
        title: the plot title.
        chance: the metric of guessing (e.g. 1 / classes), drawn as a dashed
            "chance" line; None draws none.
        target: the swept value a search aimed at (e.g. its sigma), marked by
            a vertical line; None marks none.

    Returns:
        `path`.
    """
    return save_png(drift_figure(reports, labels=labels, title=title, chance=chance, target=target), path)


def drift_figure(reports, labels=None, title=None, chance=None, target=None):
    """The matplotlib `Figure` of `plot_reports` (same arguments but `path`), not yet written."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if _is_report(reports):
        reports = [reports]
    reports = list(reports)
    if not reports or not all(_is_report(r) for r in reports):
        raise ValueError(f"`reports` must be one or more DriftReport. Received: {reports!r}")
    for attribute in ("param", "metric"):
        found = sorted({getattr(r, attribute) for r in reports})
        if len(found) > 1:
            raise ValueError(
                f"Reports on one plot must share their {attribute}; received {found}."
            )
    labels = _labels(reports, labels)

    # The object-oriented API with an Agg canvas: no pyplot, no global backend change.
    figure = Figure(figsize=(7, 4.8), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    colors = [f"C{i % 10}" for i in range(len(reports))]
    thresholds = set()
    for report, label, color in zip(reports, labels, colors):
        axes.fill_between(
            report.values, report.percentile(5), report.percentile(95), color=color, alpha=0.2, linewidth=0
        )
        axes.plot(report.values, report.mean(), color=color, marker="o", markersize=3,
                  label=f"{label} (mean, p5–p95 of {report.chips} chips)")
        axes.axhline(report.clean, color=color, linestyle=":", linewidth=1)
        if report.threshold is not None:
            thresholds.add(report.threshold)
    for threshold in sorted(thresholds):
        axes.axhline(threshold, color="0.4", linestyle="--", linewidth=1, label=f"yield threshold {threshold:g}")
    param, metric = reports[0].param, reports[0].metric
    unit_range = all(
        np.all((r.chip_metrics >= 0) & (r.chip_metrics <= 1)) and 0 <= r.clean <= 1 for r in reports
    )
    score_axis(axes, metric, chance=chance, fixed=unit_range)
    if target is not None:
        mark_target(axes, param, target)
    axes.set_xlabel(PARAM_LABELS.get(param, param))
    axes.set_title(title or f"{metric} under device noise (dotted: noise off)")
    legend_below(axes)
    figure.tight_layout()
    return figure


def score_axis(axes, metric, chance=None, fixed=True):
    """Labels the y axis with `metric`, fixes it to 0–1 (`fixed`), and draws the `chance` line.

    Shared by every accuracy plot of the package (drift curves, the study's,
    the run report's), so that they all read the same way.
    """
    if fixed:
        axes.set_ylim(-0.02, 1.02)
    axes.set_ylabel(_METRIC_LABELS.get(metric, metric))
    if chance is not None:
        axes.axhline(float(chance), color="0.55", linestyle="--", linewidth=1,
                     label=f"chance ({float(chance):.3g})")
    axes.grid(True, alpha=0.3)


def mark_target(axes, param, target):
    """A vertical line at the searched-for value `target` of `param`."""
    symbol = _PARAM_SYMBOLS.get(param, param)
    axes.axvline(float(target), color="crimson", linestyle="-.", linewidth=1.2,
                 label=f"target {symbol} = {float(target):g}")


def legend_below(axes, columns=2):
    """The legend under the axes, where it hides no curve."""
    handles, _ = axes.get_legend_handles_labels()
    if handles:
        axes.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=columns,
                    frameon=False)


def png_bytes(figure):
    """A matplotlib `figure` as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def save_png(figure, path):
    """Writes a matplotlib `figure` to `path` as PNG, atomically (folders are created); returns `path`."""
    files.write_bytes(path, png_bytes(figure))
    return os.fspath(path)


def report_table(report):
    """A report's summary as a `rich.table.Table`, for the terminal (all columns but max)."""
    from rich import box
    from rich.table import Table

    title = f"{report.model_name}: {report.metric} over {report.chips} chips per value"
    if report.dataset:
        title += f" ({report.dataset}, {report.num_examples} examples)"
    table = Table(
        title=title, caption=f"clean {report.metric}: {report.clean:.4f}", box=box.SIMPLE_HEAD
    )
    rows = [{k: v for k, v in row.items() if k != "max"} for row in report.summary()]
    for column in rows[0]:
        table.add_column(_column_label(column, report.threshold), justify="right", no_wrap=True)
    for row in rows:
        cells = [f"{row[report.param]:.4g}"]
        cells += [f"{v:.1%}" if k == "yield" else f"{v:.4f}" for k, v in row.items() if k != report.param]
        table.add_row(*cells)
    return table


def _is_report(value):
    # Duck-typed: what the drawing reads of a `DriftReport`.
    return all(hasattr(value, a) for a in ("values", "chip_metrics", "clean", "param", "metric", "percentile"))


def _column_label(column, threshold):
    if column == "yield":
        return f"yield≥{threshold:g}"
    return column


def _labels(reports, labels):
    if labels is not None:
        labels = [str(label) for label in labels]
        if len(labels) != len(reports):
            raise ValueError(
                f"`labels` must have one entry per report ({len(reports)}). Received: {labels!r}"
            )
        return labels
    names = [r.model_name for r in reports]
    if len(set(names)) == len(names):
        return names
    return [f"{name} #{i + 1}" for i, name in enumerate(names)]
