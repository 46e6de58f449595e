"""One PNG per component: each variant's mean curve over seeds with its band."""

from bayesft_keras.evaluation import rendering


def plot_component(result, path, title=None, chance=None):
    """Writes a PNG of a component's variants: mean metric against sigma, ± std band.

    The band is the standard deviation over seeds (over chips with a single
    seed); variants that differ significantly from the baseline somewhere are
    marked there (▲ helps, ▼ hurts).

    Args:
        result: a `ComponentResult`.
        path: the PNG file to write (folders are created).
        title: the plot title.
        chance: the accuracy of guessing (1 / classes), drawn as a dashed
            "chance" line; None draws none.

    Returns:
        `path`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from bayesft_keras.study.summary import HELPS
    from bayesft_keras.study.summary import HURTS

    # The object-oriented API with an Agg canvas: no pyplot, no global backend change.
    figure = Figure(figsize=(7, 4.5), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for index, (stats, comparison) in enumerate(result.rows()):
        color = "black" if comparison is None else f"C{(index - 1) % 10}"
        mean, std = stats.mean(), stats.std()
        axes.fill_between(stats.sigmas, mean - std, mean + std, color=color, alpha=0.15, linewidth=0)
        axes.plot(
            stats.sigmas, mean, color=color, marker="o", markersize=3, label=stats.label,
            linestyle="--" if comparison is None else "-",
        )
        if comparison is not None:
            for verdict, marker in ((HELPS, "^"), (HURTS, "v")):
                at = comparison.where(verdict)
                if at:
                    axes.scatter(stats.sigmas[at], mean[at], color=color, marker=marker, s=40, zorder=3)
    base = result.baseline
    band = f"± std over {base.num_seeds} seeds" if base.spread_over == "seeds" else f"± std over {base.chips} chips"
    k = result.comparisons[0].k if result.comparisons else 2.0
    axes.set_xlabel(rendering.PARAM_LABELS["sigma"])
    rendering.score_axis(axes, "accuracy", chance=chance)
    axes.set_title(
        title or f"{result.component}: accuracy under drift (mean {band}; ▲/▼: beyond {k:g} SE)",
        fontsize="medium",
    )
    rendering.legend_below(axes, columns=3)
    figure.tight_layout()
    # Written atomically, as the study's other files.
    return rendering.save_png(figure, path)
