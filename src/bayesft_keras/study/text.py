"""The prose of a study's summary that comes from its settings, not its numbers."""


def title(builder, ds):
    return f"Component study: {builder.name} on {ds.name}"


def setup_sentence(builder, ds, config, seeds, noise):
    """How the variants were trained and scored, in one paragraph of `summary.md`."""
    from bayesft_keras.device import noise as noise_lib

    sigmas = config["sigmas"]
    if noise is None or isinstance(noise, noise_lib.LogNormalDrift):
        noise_text = "log-normal drift: w' = w·exp(θ), θ ~ N(0, σ²)"
    else:
        noise_text = f"{type(noise).__name__}, sweeping its σ"
    recipe = f"Adam, one-cycle peak learning rate {config['learning_rate']:g}"
    if config["clipvalue"]:
        recipe += f", clipvalue {config['clipvalue']:g}"
    if config["weight_decay"]:
        recipe += f", weight decay {config['weight_decay']:g}"
    if builder.custom:
        recipe += ", unless build_fn compiled the model"
        sites = ""
    else:
        sites = " Dropout variants apply the rate after every hidden layer (not after the output layer)."
    return (
        f"Each variant was trained {len(seeds)} times (seeds {', '.join(map(str, seeds))}) for "
        f"{config['epochs']} epochs ({recipe}; batch {config['batch_size']}) on "
        f"{config['train_examples']} training images of {ds.name}, then scored on its "
        f"{config['test_examples']} test images on {config['chips']} simulated chips per σ "
        f"({noise_text}), σ = {', '.join(f'{s:g}' for s in sigmas)}."
        + sites
        + (f" Device precision: {config['bits']} bits." if config["bits"] else "")
    )
