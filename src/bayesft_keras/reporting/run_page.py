"""The page of a `tune` run: the methods compared, the drift curves, the search, the settings."""

import numpy as np

from bayesft_keras.reporting import commands
from bayesft_keras.reporting import figures
from bayesft_keras.reporting import html
from bayesft_keras.reporting import markdown
from bayesft_keras.reporting.runs import number

# Without a threshold of its own, a chip passes at this share of the best clean accuracy.
YIELD_SHARE = 0.9

# config.json's keys by what they set (the rest are listed under "other").
DEVICE_KEYS = ("device", "bits", "sigma", "sigma_range", "sigma_points", "chips", "min_clean_accuracy",
               "report_sigmas", "report_chips")
SEARCH_KEYS = ("task", "arch", "width", "dataset", "data_dir", "max_train_examples", "input_shape", "trials",
               "initial_points", "search_space", "rate_range", "output_rate_range", "initial_rates", "baselines",
               "uniform_rate", "noise_injection_range", "epochs", "batch_size", "learning_rate", "clipvalue",
               "weight_decay", "init", "init_scale", "warm_start_epochs", "trial_curve_points", "seed")

SECTIONS = (
    ("results", "Results"),
    ("drift", "Drift curves"),
    ("progress", "Search progress"),
    ("rates", "Searched values"),
    ("trials", "Every trial: clean and drift accuracy"),
    ("settings", "Device and search settings"),
    ("resume", "Resume"),
)


def yield_threshold(run, threshold=None):
    """The accuracy a chip must reach to count in the yield: `threshold`, else the reports' own,
    else `YIELD_SHARE` of the best clean accuracy (rounded down to 0.01)."""
    if threshold is not None:
        return float(threshold)
    own = sorted({r.threshold for r in run.reports.values() if r.threshold is not None})
    if own:
        return float(own[0])
    best_clean = max(r.clean for r in run.reports.values())
    return float(np.floor(YIELD_SHARE * best_clean * 100) / 100)


def at_target(report, target):
    """The index of the swept value nearest `target`."""
    return int(np.argmin(np.abs(np.asarray(report.values, dtype=float) - float(target))))


def page(run, chance=None, threshold=None):
    """The whole HTML page of a `runs.TuneRun`."""
    config = run.config
    name = config.get("name", run.directory.name)
    title = f"BayesFT search: {name}"
    bits = config.get("bits")
    lead = (
        f"{config.get('arch')} on {config.get('dataset')}, device {config.get('device', 'lognormal')} "
        f"({'full-precision' if bits is None else f'{bits}-bit'} weights). The search maximised the mean "
        f"accuracy over {config.get('chips')} simulated chips at σ = {config.get('sigma')} on the "
        f"validation split; the results below are on the test split. Run directory: "
        f"<code>{html.escape(run.directory)}</code>."
    )
    body = [
        f"<header><h1>{html.escape(title)}</h1><p class=\"lead\">{lead}</p>",
        html.contents(SECTIONS), "</header>",
        _results(run, chance, yield_threshold(run, threshold)),
        _drift(run, chance),
        _progress(run, chance),
        _rates(run, chance),
        _trials(run, chance),
        _settings(run),
        _resume(run),
    ]
    if run.summary:
        body.append(
            '<section id="summary"><details><summary>summary.md, as the run wrote it</summary>'
            + markdown.to_html(run.summary, skip_title=True) + "</details></section>"
        )
    return html.page(title, "\n".join(body))


def _results(run, chance, threshold):
    sigma = run.config.get("sigma")
    rows, classes, at = [], [], []
    for method, report in run.reports.items():
        i = at_target(report, sigma)
        at.append(report.values[i])
        trials = run.method_trials(method)
        best = figures.best_row(trials)
        rows.append([
            html.escape(report.model_name),
            f"{report.clean:.4f}",
            f"{report.mean()[i]:.4f}",
            f"{report.percentile(5)[i]:.3f}–{report.percentile(95)[i]:.3f}",
            f"{report.yield_at(threshold)[i]:.0%}",
            "" if best is None else f"{number(best['drift_accuracy']):.4f}",
            str(len(trials)),
        ])
    means = [number(r[2]) for r in rows]
    classes = ["best" if m == max(means) else None for m in means]
    report = next(iter(run.reports.values()))
    where = f"{figures.swept(run)} = {at[0]:g}"
    if abs(at[0] - float(sigma)) > 1e-9:
        where += f" (the swept value nearest {sigma})"
    metric = report.metric
    header = ["method", f"clean {metric}", f"{metric} at {where}", "p5–p95 of chips",
              f"yield (≥ {threshold:g})", "validation objective", "trials"]
    chance_note = "" if chance is None else f" Guessing scores {chance:.3g} (chance)."
    words = (
        f"<p>Each method's best trial (highest validation objective) was scored on the test split"
        f"{'' if report.num_examples is None else f' ({report.num_examples} examples)'}. "
        f"<b>Clean {metric}</b>: device noise off (quantization stays). <b>{metric.capitalize()} at {where}</b>: the mean "
        f"over {report.chips} simulated chips, each with its own drift draw; <b>p5–p95</b>: the 5th and 95th "
        f"percentile of those chips. <b>Yield</b>: the share of those chips whose {metric} is at least "
        f"{threshold:g}. <b>Validation objective</b>: what the search maximised (validation split, "
        f"{run.config.get('chips')} chips). The best {metric} at {figures.swept(run)} is highlighted.{chance_note}</p>"
    )
    parts = [words, html.table(header, rows, numeric=(1, 2, 3, 4, 5, 6), row_classes=classes)]
    best = figures.best_row(run.method_trials("bayesft"))
    if best is not None:
        names = [n for n in run.hyperparameter_names() if number(best.get(n)) is not None]
        parts.append("<h3>BayesFT's best trial</h3>")
        parts.append(html.table(
            ["searched value", "best"], [[f"<code>{html.escape(n)}</code>", f"{number(best[n]):.3f}"] for n in names],
            numeric=(1,),
        ))
    return html.section("results", "Results", *parts)


def _drift(run, chance):
    caption = (
        "Mean test accuracy across chips (line) with the band between the 5th and 95th percentile of chips; "
        "dotted: the same model with noise off; dashed: chance; dash-dot: the σ the search aimed at."
    )
    return html.section(
        "drift", "Drift curves",
        "<p>How accuracy falls as drift grows, for each method's best model.</p>",
        html.image(figures.drift_curves(run, chance), "Drift curves of every method", caption),
    )


def _progress(run, chance):
    png = figures.search_progress(run, chance)
    if png is None:
        return html.section("progress", "Search progress", "<p>No searched trials in trials.csv.</p>")
    return html.section(
        "progress", "Search progress",
        "<p>The validation objective of each trial in the order it ran (dots), and the best so far (line): "
        "a line still rising at the end says more trials may still pay.</p>",
        html.image(png, "Best objective against the trial number"),
    )


def _rates(run, chance):
    images = []
    for name in run.hyperparameter_names():
        png = figures.rate_scatter(run, name, chance)
        if png is not None:
            images.append(html.image(png, f"{name} against the objective"))
    if not images:
        return html.section("rates", "Searched values", "<p>No searched values in trials.csv.</p>")
    return html.section(
        "rates", "Searched values",
        "<p>Each searched value against the validation objective of every trial: where the high scores "
        "cluster, that value matters; a flat cloud says it does not.</p>",
        '<div class="grid">' + "".join(images) + "</div>",
    )


def _trials(run, chance):
    png = figures.clean_vs_drift(run, chance)
    if png is None:
        return html.section("trials", "Every trial: clean and drift accuracy", "<p>No trials in trials.csv.</p>")
    return html.section(
        "trials", "Every trial: clean and drift accuracy",
        "<p>Each trial's accuracy with noise off against its mean accuracy on drifted chips (validation "
        "split, before any minimum-clean-accuracy rule): the further below the dotted y = x line, the more "
        "the trial loses to drift.</p>",
        html.image(png, "Clean against drift accuracy of every trial"),
    )


def _settings(run):
    config = run.config
    groups = (
        ("Device and objective", [k for k in DEVICE_KEYS if k in config]),
        ("Search and training", [k for k in SEARCH_KEYS if k in config]),
        ("Other", [k for k in config if k not in DEVICE_KEYS and k not in SEARCH_KEYS]),
    )
    parts = ["<p>From <code>config.json</code>: every setting of the run (None: the architecture's or "
             "recipe's own value).</p>"]
    columns = [
        f"<div><h3>{title}</h3>{html.settings((k, _value(config[k])) for k in keys)}</div>"
        for title, keys in groups if keys
    ]
    parts.append('<div class="grid">' + "".join(columns) + "</div>")
    return html.section("settings", "Device and search settings", *parts)


def _resume(run):
    command = commands.tune_command(run.config, run.directory)
    return html.section(
        "resume", "Resume",
        "<p>Running this again continues the run: finished trials are kept, and a higher <code>--trials</code> "
        "extends the search (any other change is refused). It passes every setting of config.json that "
        f"<code>tune</code> has a flag for; <code>--preset {html.escape(run.config.get('name'))}</code> names "
        "the preset the run started from (give its TOML path if it is not in <code>tuners/</code>). "
        "A distributed search resumes with this command on the chief and its usual workers.</p>",
        f"<pre><code>{html.escape(command)}</code></pre>",
        f"<p class=\"note\">This page again: <code>bayesft-keras report {html.escape(run.directory)}</code>.</p>",
    )


def _value(value):
    if value is None:
        return "None"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) if value else "(none)"
    return str(value)
