"""The copy of a model with its dropout sites (`model_sites.site_plan`), and the `build_fn` of `from_model`.

`with_sites` rebuilds a Sequential model as Sequential, layer by layer, and a
Functional one with `keras.models.clone_model`, whose `call_function` adds
the site's Dropout layer (and a split-off softmax) after the layer it follows.
Nested models are rebuilt the same way. Every layer is new: its weights come
from its own initializer, or from the model with `copy_weights=True`.
"""

import keras

from bayesft_keras.architectures import SiteDropout
from bayesft_keras.device.convert import to_keras
from bayesft_keras.tuning import model_sites

PROBABILITIES = "probabilities"  # the softmax added after a model's logits


def build_fn(model, sites="all", init_from_model=False):
    """A `build_fn` for `BayesFTHyperModel` (`from_model`) and its site names.

    The function maps `{site: rate}` to a new copy of `model` with its sites
    (`with_sites`). It holds a copy of `model` taken now: the caller's model is
    never changed, and training it afterwards changes no trial.

    Args:
        model: a built Sequential or Functional `keras.Model`, one input and
            one output, ending in a softmax or in a `Dense` layer without
            activation (which gets a softmax).
        sites: "all", "dense" or a list of layer names (see `site_plan`).
        init_from_model: start every copy from `model`'s weights (fine-tuning);
            False: from new ones, each layer's own initializer (from scratch).

    Returns:
        `(build_fn, site_names)`.
    """
    if not isinstance(init_from_model, bool):
        raise ValueError(f"`init_from_model` must be True or False. Received: init_from_model={init_from_model!r}")
    plan = model_sites.site_plan(model, sites)
    model_sites.needs_softmax(model)  # raises on an output that is neither probabilities nor logits
    source = keras.models.clone_model(model)
    source.set_weights(model.get_weights())

    def build(rates):
        return with_sites(source, rates, plan, copy_weights=init_from_model)

    build.__name__ = model.name  # the hypermodel's `arch`, in its repr and logs
    return build, [site.name for site in plan]


def with_sites(model, rates, plan, copy_weights=False):
    """A copy of `model` with a Dropout layer at every site of `plan`.

    Args:
        model: the model `plan` was made for (not modified).
        rates: `{site: rate}` for every site of `plan`.
        plan: from `site_plan`.
        copy_weights: start from `model`'s weights (True), or from new ones
            made by each layer's own initializer (False).

    Returns:
        A new `keras.Model` of the same kind (Sequential or Functional).
    """
    missing = [site.name for site in plan if site.name not in rates]
    if missing:
        raise ValueError(f"`rates` needs a rate for every site; missing: {missing}. Received: rates={rates!r}")
    by_model = {}
    for site in plan:
        by_model.setdefault(site.model, {})[site.after] = site
    copy = _rebuild(model, by_model, rates)
    if model_sites.needs_softmax(model):
        if isinstance(copy, keras.Sequential):
            copy.add(keras.layers.Activation("softmax", name=PROBABILITIES))
        else:
            outputs = keras.layers.Activation("softmax", name=PROBABILITIES)(copy.outputs[0])
            copy = keras.Model(copy.inputs, outputs, name=copy.name)
    if copy_weights:
        copy_weights_by_name(model, copy)
    return copy


def copy_weights_by_name(source, target):
    """Assigns every weight of `source` to the layer of the same name (and nesting) in `target`."""
    targets = dict(model_sites.named_layers(target))
    for path, layer in model_sites.named_layers(source):
        if isinstance(layer, keras.Model) or not layer.weights:
            continue
        values = {_leaf(v): v for v in layer.weights}
        for variable in targets[path].weights:
            if _leaf(variable) in values:
                variable.assign(values[_leaf(variable)].value)


# -- the copy ------------------------------------------------------------------


def _rebuild(model, by_model, rates):
    sites = by_model.get(model.name, {})

    def clone(layer):
        if isinstance(layer, keras.Model):
            return _rebuild(layer, by_model, rates)
        config = layer.get_config()
        site = sites.get(layer.name)
        if site is not None and site.split:
            config["activation"] = "linear"
        return type(layer).from_config(config)

    def after(layer, x):
        site = sites.get(layer.name)
        if site is None:
            return []
        layers = [_dropout(site, rates[site.name], len(x.shape), _is_conv_site(model, site))]
        if site.split:
            layers.append(keras.layers.Activation("softmax", name=f"{site.layer}_softmax"))
        return layers

    if isinstance(model, keras.Sequential):
        copy = keras.Sequential(name=model.name)
        copy.add(keras.Input(shape=model.inputs[0].shape[1:], dtype=model.inputs[0].dtype))
        for layer in model.layers:
            new = clone(layer)
            copy.add(new)
            for extra in after(new, layer.output):
                copy.add(extra)
        return copy

    def call(layer, *args, **kwargs):
        x = layer(*args, **kwargs)
        for extra in after(layer, x):
            x = extra(x)
        return x

    return keras.models.clone_model(model, clone_function=clone, call_function=call)


def _is_conv_site(model, site):
    layer = model.get_layer(site.layer)
    return isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.DepthwiseConv2D))


def _dropout(site, rate, rank, conv):
    """The zoo's `SiteDropout`: channel dropout on a feature map (as `SpatialDropout2D`, or
    `SpatialDropout1D` after a `Conv1D`), plain dropout otherwise. Its rate is a variable, so
    that every trial trains one compiled model (`tuning.reuse`)."""
    return SiteDropout(rate, channelwise=rank == 4 or rank == 3 and conv, name=site.dropout_name)


def plain_model(model):
    """A copy of `model` in Keras's own layers, which loads without this package.

    ReRAM layers become their Keras layers (`bayesft_keras.device.convert.to_keras`) and
    each `SiteDropout` (a zoo model's) the Keras dropout of its rate: `SpatialDropout2D` (or
    `SpatialDropout1D`) where it drops channels, `Dropout` otherwise. Weights are copied.
    """
    source = to_keras(model)

    def clone(layer):
        if not isinstance(layer, SiteDropout):
            return type(layer).from_config(layer.get_config())
        if not layer.channelwise:
            return keras.layers.Dropout(layer.rate, name=layer.name)
        spatial = keras.layers.SpatialDropout2D if len(layer.input.shape) == 4 else keras.layers.SpatialDropout1D
        return spatial(layer.rate, name=layer.name)

    copy = keras.models.clone_model(source, clone_function=clone, recursive=True)
    copy_weights_by_name(source, copy)
    return copy


def _leaf(variable):
    return variable.path.split("/")[-1]
