"""Drawing drift reports: PNG plots (several models on one plot) and terminal tables.

Works on any object with a `DriftReport`'s public attributes and summaries
(`values`, `mean()`, `percentile(q)`, `summary()`, ...): it does not
import the report module, which keeps the report a plain data class.
"""

import io
import os

from bayesft_keras.utils import files

_PARAM_LABELS = {"sigma": "drift σ (w' = w·exp(θ), θ ~ N(0, σ²))"}


def plot_reports(reports, path, labels=None, title=None):
    """Writes a PNG comparing drift reports: mean metric with its p5–p95 band.

    Each report is drawn as its mean across chips against the swept value,
    with the band between the 5th and 95th percentile of chips and its clean
    (noise-off) metric as a dotted line; a report's yield threshold, if set,
    is drawn in grey.

    Args:
        reports: a `DriftReport` or a list of them, sweeping the same
            parameter with the same metric.
        path: the PNG file to write (folders are created).
        labels: one legend label per report (default: model names, made
            unique).
        title: the plot title.

    Returns:
        `path`.
    """
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
    figure = Figure(figsize=(7, 4.5), dpi=120)
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
    param = reports[0].param
    axes.set_xlabel(_PARAM_LABELS.get(param, param))
    axes.set_ylabel(reports[0].metric)
    axes.set_title(title or f"{reports[0].metric} under device noise (dotted: noise off)")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    return save_png(figure, path)


def save_png(figure, path):
    """Writes a matplotlib `figure` to `path` as PNG, atomically (folders are created); returns `path`."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    files.write_bytes(path, buffer.getvalue())
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
