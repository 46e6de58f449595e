"""The figures of a `tune` run's page, as PNG bytes: drift curves, search progress, rates, trials.

Each reads a `runs.TuneRun` and draws with the package's shared axis style
(`evaluation.rendering`: a fixed 0–1 score axis, the chance line, legends
below the axes), with a title and labelled axes.
"""

import numpy as np

from bayesft_keras.evaluation import rendering
from bayesft_keras.reporting.runs import number

# Methods whose trials are searched (several trials); the others run one trial.
SEARCHED = ("bayesft", "random", "noise_injection")


def _figure(width=7, height=4.8):
    # The object-oriented API with an Agg canvas: no pyplot, no global backend change.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=120)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def swept(run):
    """How the page writes the swept parameter: "σ" for drift, else the parameter's name (e.g. t)."""
    param = next(iter(run.reports.values())).param
    return "σ" if param == "sigma" else param


def _colors(run):
    # One colour per method, the same on every figure of the page (and as the drift curves').
    return {method: f"C{i % 10}" for i, method in enumerate(run.reports)}


def _title(run, method):
    report = run.reports.get(method)
    return report.model_name if report is not None else method


def drift_curves(run, chance=None):
    """The test-split drift curves of every method with their p5–p95 bands (`plot_reports`'s figure)."""
    sigma = run.config.get("sigma")
    figure = rendering.drift_figure(
        list(run.reports.values()), chance=chance, target=sigma,
        title="Test accuracy of each method's best model under drift (dotted: noise off)",
    )
    return rendering.png_bytes(figure)


def search_progress(run, chance=None):
    """The best validation score so far against the trial number, per searched method; or None."""
    methods = [m for m in run.reports if len(run.method_trials(m)) > 1 or m in SEARCHED]
    methods = [m for m in methods if run.method_trials(m)]
    if not methods:
        return None
    figure, axes = _figure()
    colors = _colors(run)
    for method in methods:
        scores = np.array([number(r.get("drift_accuracy"), np.nan) for r in run.method_trials(method)])
        trials = np.arange(1, len(scores) + 1)
        best = np.fmax.accumulate(np.where(np.isnan(scores), -np.inf, scores))
        color = colors.get(method, "C9")
        axes.scatter(trials, scores, color=color, s=18, alpha=0.6, label=f"{_title(run, method)}: each trial")
        axes.step(trials, best, where="post", color=color, linewidth=1.8, label=f"{_title(run, method)}: best so far")
    rendering.score_axis(axes, "accuracy", chance=chance)
    axes.set_ylabel(f"validation objective (accuracy at target {swept(run)}, 0–1)")
    axes.set_xlabel("trial number (in the order the trials ran)")
    axes.set_title(f"Search progress: best objective so far ({swept(run)} = {run.config.get('sigma')})")
    axes.xaxis.get_major_locator().set_params(integer=True)
    rendering.legend_below(axes)
    figure.tight_layout()
    return rendering.png_bytes(figure)


def rate_scatter(run, name, chance=None):
    """One searched value (`name`, a trials.csv column) against each trial's validation score; or None."""
    figure, axes = _figure(4.8, 4.2)
    colors = _colors(run)
    drawn = False
    for method in run.reports:
        rows = [r for r in run.method_trials(method) if number(r.get(name)) is not None]
        if not rows:
            continue
        x = [number(r[name]) for r in rows]
        y = [number(r.get("drift_accuracy"), np.nan) for r in rows]
        axes.scatter(x, y, color=colors[method], s=22, alpha=0.75, label=_title(run, method))
        drawn = True
    if not drawn:
        return None
    best = best_row(run.method_trials("bayesft"))
    if best is not None and number(best.get(name)) is not None:
        axes.scatter([number(best[name])], [number(best["drift_accuracy"])], s=120, facecolors="none",
                     edgecolors="black", linewidths=1.5, label="BayesFT's best trial")
    if name in LOG_SCALE:
        axes.set_xscale("log")
    rendering.score_axis(axes, "accuracy", chance=chance)
    axes.set_ylabel("validation objective (0–1)")
    axes.set_xlabel(f"{name} ({_unit(name)})")
    axes.set_title(f"{name} against the objective, every trial", fontsize="medium")
    rendering.legend_below(axes, columns=2)
    figure.tight_layout()
    return rendering.png_bytes(figure)


def clean_vs_drift(run, chance=None):
    """Each trial's clean against drift accuracy (validation split); or None without trials."""
    rows = [r for r in run.trials if number(r.get("clean_accuracy")) is not None]
    if not rows:
        return None
    figure, axes = _figure(6, 5.4)
    colors = _colors(run)
    for method in dict.fromkeys(r.get("method") for r in rows):
        mine = [r for r in rows if r.get("method") == method]
        drift = [number(r.get("unconstrained_drift_accuracy", r.get("drift_accuracy")), np.nan) for r in mine]
        axes.scatter([number(r["clean_accuracy"]) for r in mine], drift, color=colors.get(method, "C9"),
                     s=24, alpha=0.75, label=_title(run, method))
    axes.plot([0, 1], [0, 1], color="0.6", linewidth=1, linestyle=":", label="no loss to drift (y = x)")
    rendering.score_axis(axes, "accuracy", chance=chance)
    if chance is not None:
        axes.axvline(float(chance), color="0.55", linestyle="--", linewidth=1)
    axes.set_xlim(-0.02, 1.02)
    axes.set_xlabel("clean accuracy, noise off (validation, 0–1)")
    axes.set_ylabel(f"drift accuracy at {swept(run)} = {run.config.get('sigma')} (validation, 0–1)")
    axes.set_title("Every trial: accuracy without and with drift")
    rendering.legend_below(axes)
    figure.tight_layout()
    return rendering.png_bytes(figure)


def best_row(rows):
    """The row of the highest validation objective among `rows`, or None."""
    scored = [r for r in rows if number(r.get("drift_accuracy")) is not None]
    return max(scored, key=lambda r: number(r["drift_accuracy"])) if scored else None


# The extended space's values searched on a log scale (`tuning/hypermodel.py`).
LOG_SCALE = ("init_scale", "weight_decay", "learning_rate")


def _unit(name):
    # What the searched values of `tuning/hypermodel.py` are.
    if name.startswith("dropout"):
        return "dropout rate, 0–1"
    if name == "noise_injection_sigma":
        return "training noise σ, unitless"
    if name == "init_scale":
        return "factor on the initial weights' bound, log scale"
    if name in ("weight_decay", "learning_rate"):
        return "log scale"
    return "searched value"
