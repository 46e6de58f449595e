"""The page of a `study` folder: its summary, its table, one plot per component, its settings."""

from bayesft_keras.reporting import commands
from bayesft_keras.reporting import html
from bayesft_keras.reporting import markdown


def page(run):
    """The whole HTML page of a `runs.StudyRun`."""
    first = run.summary.splitlines()[0] if run.summary else ""
    title = first[2:].strip() if first.startswith("# ") else f"Component study: {run.directory.name}"
    sections = [("findings", "Findings"), ("table", "Accuracy table"), ("plots", "Plots"),
                ("settings", "Settings"), ("resume", "Resume")]
    body = [
        f"<header><h1>{html.escape(title)}</h1>",
        f'<p class="lead">Study folder: <code>{html.escape(run.directory)}</code>.</p>',
        html.contents(sections), "</header>",
        html.section("findings", "Findings", markdown.to_html(run.summary, heading_offset=1, skip_title=True)),
        html.section(
            "table", "Accuracy table",
            "<p>Test accuracy of every variant at each σ (mean ± standard deviation over seeds); ▲/▼ mark "
            "a variant above/below its baseline beyond the study's k standard errors.</p>",
            markdown.to_html(run.table),
        ),
        _plots(run),
        _settings(run),
        _resume(run),
    ]
    return html.page(title, "\n".join(body))


def _plots(run):
    if not run.plots:
        return html.section("plots", "Plots", "<p>No component plot in the folder.</p>")
    images = [
        html.image(path.read_bytes(), f"{component}: accuracy under drift", f"{component}: {path.name}")
        for component, path in run.plots.items()
    ]
    return html.section(
        "plots", "Plots",
        "<p>One plot per component: each variant's mean accuracy against σ with its band; the baseline "
        "dashed and black.</p>",
        *images,
    )


def _settings(run):
    config = run.study.get("config", {})
    pairs = [(k, _value(v)) for k, v in config.items()]
    pairs += [(k, _value(run.study[k])) for k in ("components", "seeds", "baseline", "variants", "skipped", "k")
              if k in run.study]
    return html.section(
        "settings", "Settings",
        "<p>From <code>study.json</code>: the settings every run of the study shares.</p>",
        html.settings(pairs),
    )


def _resume(run):
    command = commands.study_command(run.study, run.directory)
    if command is None:
        text = ("<p>This study was started from Python with settings the command line cannot give "
                "(a <code>build_fn</code>, a noise model or its own seeds): call <code>run_study</code> "
                "again with the same arguments and <code>out</code> to resume it.</p>")
    else:
        text = ("<p>Running this again continues the study: finished runs are read back, not trained "
                f"again.</p><pre><code>{html.escape(command)}</code></pre>")
    return html.section(
        "resume", "Resume", text,
        f"<p class=\"note\">This page again: <code>bayesft-keras report {html.escape(run.directory)}</code>.</p>",
    )


def _value(value):
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) if value else "(none)"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) if value else "(none)"
    return "None" if value is None else str(value)
