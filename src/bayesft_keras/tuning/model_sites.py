"""Dropout sites in any Sequential or Functional Keras model: where they go, and the copy that has them.

BayesFT searches one dropout rate per *site*. The architecture zoo places its
sites by hand (`architectures.common`); for a user's own model,
`site_plan` places them by a rule:

- `"all"`: after every layer that runs on the device (`Dense`, `Conv1D`,
  `Conv2D`, `DepthwiseConv2D`, and ReRAM layers);
- `"dense"`: after the `Dense` layers only;
- a list of layer names: after each of those layers (any layer, e.g. the
  `Add` that closes a residual block).

Where exactly, for a chosen layer: after its activation. The site follows
the layer's output through the normalization and activation layers that
alone consume it (`Conv2D -> BatchNormalization -> ReLU`: after the `ReLU`),
and stops before any other layer, where a tensor feeds several layers (a
residual branch: every consumer then sees the dropped-out tensor) and at a
model's output. As in the zoo, a feature map gets channel dropout
(`SpatialDropout2D`, `SpatialDropout1D` after a `Conv1D`), anything else
`Dropout`; and the site of the model's last layer is the zoo's `output`
site, placed before the softmax: a last `Dense(..., activation="softmax")`
becomes `Dense` without activation, then `dropout_output`, then its softmax
(`<layer>_softmax`); a last layer without activation (logits) gets a
softmax (`probabilities`) after its site, because the recipe's loss takes
probabilities.

A site is named after its layer (`dropout_<layer>` is its Dropout layer and
its hyperparameter), except the output site (`output`). Nested models get
their sites inside them. `with_sites` builds the copy: new layers with new
weights (the layers' own initializers), or the model's own weights with
`copy_weights=True`; the model given is never changed.
"""

import dataclasses

import keras

from bayesft_keras.device.layers import REPLACEMENTS
from bayesft_keras.device.layers import DeviceLayerMixin
from bayesft_keras.device.layers import ReRAMDense

RULES = ("all", "dense")
OUTPUT_SITE = "output"  # as `tuning.hypermodel.OUTPUT_SITE`: the site of `output_rate_range`
PROBABILITIES = "probabilities"


@dataclasses.dataclass(frozen=True)
class Site:
    """One dropout site of a model.

    Attributes:
        name: the site's name (its hyperparameter is `dropout_<name>`).
        layer: the layer the rule chose.
        after: the layer whose output the Dropout layer takes.
        model: the name of the (nested) model that holds both.
        split: whether `layer`'s own softmax moves after the Dropout layer.
    """

    name: str
    layer: str
    after: str
    model: str
    split: bool = False

    @property
    def dropout_name(self):
        return f"dropout_{self.name}"


def check_model(model, argument="model"):
    """Raises `ValueError` unless `model` is a built Sequential or Functional model of one input and output."""
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"`{argument}` must be a Keras 3 `keras.Model`. Received: {argument} of type {type(model).__name__}"
        )
    if not _is_graph(model):
        name = type(model).__name__
        raise ValueError(
            f"`{argument}` must be a Sequential or Functional Keras model: dropout sites are inserted "
            f"into its graph of layers, and a subclassed model has none to read. Received: {argument} "
            f"of class {name}"
        )
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(
            f"`{argument}` must have one input and one output (images -> class probabilities). "
            f"Received: {argument} {model.name!r} with {len(model.inputs)} inputs and "
            f"{len(model.outputs)} outputs"
        )
    return model


def _is_graph(model):
    """Whether `model` is Sequential or Functional: built, with symbolic inputs (a subclassed model has none)."""
    try:
        return bool(getattr(model, "inputs", None))
    except (AttributeError, ValueError):  # an unbuilt Sequential model
        return False


def input_shape(model):
    """The input shape of `model` without the batch dimension (None: any size)."""
    return tuple(check_model(model).inputs[0].shape[1:])


def num_classes(model):
    """The classes of `model`: its output's last dimension."""
    return check_model(model).outputs[0].shape[-1]


def site_plan(model, sites="all"):
    """The dropout sites of `model` by a rule, in graph order.

    Args:
        model: a built Sequential or Functional `keras.Model` (nested models too).
        sites: "all" (after every `Dense`, `Conv1D`, `Conv2D`,
            `DepthwiseConv2D` and ReRAM layer), "dense" (after `Dense`
            layers only), or a list of layer names.

    Returns:
        A list of `Site`.
    """
    check_model(model)
    chosen = _chosen(model, sites)
    plan = _plan(model, chosen, at_output=True)
    if not plan:
        raise ValueError(
            f"`sites` chose no layer of {model.name!r}: it has no layer the rule {sites!r} picks. "
            f"Received: sites={sites!r}"
        )
    names = [site.name for site in plan]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(
            f"Dropout sites are named after their layers, and layers {repeated} of {model.name!r} "
            "share a name across nested models. Rename them, or choose sites by name."
        )
    taken = {layer.name for _, layer in _named_layers(model)} | set(names)
    clashes = sorted(site.dropout_name for site in plan if site.dropout_name in taken)
    if clashes:
        raise ValueError(
            f"The dropout layers {clashes} would take names {model.name!r} already has. Rename its layers."
        )
    if OUTPUT_SITE in [site.layer for site in plan if site.name != OUTPUT_SITE]:
        raise ValueError(
            f"Layer {OUTPUT_SITE!r} of {model.name!r} is not its last layer, but the site name "
            f"{OUTPUT_SITE!r} is the output site's. Rename the layer."
        )
    return plan


def build_fn(model, sites="all", copy_weights=False):
    """A `build_fn` for `BayesFTHyperModel` (`from_model`) and its site names.

    The function maps `{site: rate}` to a new copy of `model` with its sites
    (`with_sites`). It holds a copy of `model` taken now: the caller's model is
    never changed, and training it afterwards changes no trial.

    Args:
        model: a built Sequential or Functional `keras.Model`, one input and
            one output, ending in a softmax or in a `Dense` layer without
            activation (which gets a softmax).
        sites: "all", "dense" or a list of layer names (see `site_plan`).
        copy_weights: start every copy from `model`'s weights (fine-tuning);
            False: from new ones, each layer's own initializer (from scratch).

    Returns:
        `(build_fn, site_names)`.
    """
    if not isinstance(copy_weights, bool):
        raise ValueError(f"`init_from_model` must be True or False. Received: init_from_model={copy_weights!r}")
    plan = site_plan(model, sites)
    _needs_softmax(model)  # raises on an output that is neither probabilities nor logits
    source = keras.models.clone_model(model)
    source.set_weights(model.get_weights())

    def build(rates):
        return with_sites(source, rates, plan, copy_weights=copy_weights)

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
    if _needs_softmax(model):
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
    targets = dict(_named_layers(target))
    for path, layer in _named_layers(source):
        if isinstance(layer, keras.Model) or not layer.weights:
            continue
        values = {_leaf(v): v for v in layer.weights}
        for variable in targets[path].weights:
            if _leaf(variable) in values:
                variable.assign(values[_leaf(variable)].value)


# -- the plan ------------------------------------------------------------------


def _chosen(model, sites):
    """The names of the layers `sites` picks, over every nesting level."""
    layers = [layer for _, layer in _named_layers(model) if not isinstance(layer, keras.layers.InputLayer)]
    if isinstance(sites, str):
        if sites not in RULES:
            raise ValueError(
                f"`sites` must be one of {list(RULES)} or a list of layer names. Received: sites={sites!r}"
            )
        if sites == "all":
            return {layer.name for layer in layers if _on_device(layer)}
        return {layer.name for layer in layers if type(layer) is keras.layers.Dense or isinstance(layer, ReRAMDense)}
    try:
        names = list(sites)
    except TypeError:
        names = None
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError(
            f"`sites` must be one of {list(RULES)} or a non-empty list of layer names. Received: sites={sites!r}"
        )
    known = {layer.name for layer in layers}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(
            f"`sites` names layers {model.name!r} does not have: {unknown}. Its layers include "
            f"{sorted(known)[:12]}. Received: sites={sites!r}"
        )
    return set(names)


def _on_device(layer):
    return type(layer) in REPLACEMENTS or isinstance(layer, DeviceLayerMixin)


def _plan(model, chosen, at_output):
    graph = _Graph(model)
    plan = []
    for name in graph.order:
        layer = graph.layers[name]
        if isinstance(layer, keras.Model):
            # A nested model's sites are its own; its last layer is the output site when
            # the nested model's output is the whole model's.
            plan += _plan(layer, chosen, at_output and name in graph.outputs)
        if name not in chosen:
            continue
        if graph.nodes[name] != 1:
            raise ValueError(
                f"Layer {name!r} of {model.name!r} is called {graph.nodes[name]} times (a shared layer): "
                "a dropout site needs a layer called once. Choose other sites."
            )
        plan.append(_site(graph, name, chosen, at_output))
    return plan


def _site(graph, name, chosen, at_output):
    layer = graph.layers[name]
    if _activation(layer) == "softmax":
        output = at_output and name in graph.outputs
        return Site(OUTPUT_SITE if output else name, name, name, graph.model.name, split=output)
    after = name
    while after not in graph.outputs:
        consumers = graph.consumers.get(after, [])
        if len(consumers) != 1:
            break
        (next_name,) = consumers
        follower = graph.layers[next_name]
        if graph.nodes[next_name] != 1 or next_name in chosen or not _follows(follower):
            break
        if _is_softmax(follower):
            if at_output and next_name in graph.outputs:
                return Site(OUTPUT_SITE, name, after, graph.model.name)
            break
        after = next_name
    output = at_output and after in graph.outputs
    return Site(OUTPUT_SITE if output else name, name, after, graph.model.name)


class _Graph:
    """The layers of one model level, their call order, who consumes whom, and the outputs.

    Read from the model's config (public and the same for a model built in code
    or loaded from a file); a Sequential model is a chain.
    """

    def __init__(self, model):
        self.model = model
        if isinstance(model, keras.Sequential):
            layers = list(model.layers)
            self.layers = {layer.name: layer for layer in layers}
            self.order = [layer.name for layer in layers]
            self.nodes = dict.fromkeys(self.order, 1)
            self.consumers = {a.name: [b.name] for a, b in zip(layers, layers[1:])}
            self.outputs = {layers[-1].name} if layers else set()
            return
        config = model.get_config()
        self.layers = {}
        self.order = []
        self.nodes = {}
        self.consumers = {}
        for entry in config["layers"]:
            name = entry["name"]
            self.layers[name] = model.get_layer(name)
            if entry["class_name"] == "InputLayer":
                continue
            self.order.append(name)
            self.nodes[name] = len(entry["inbound_nodes"])
            for node in entry["inbound_nodes"]:
                for source, _, tensor in _histories(node):
                    # Only a layer's first output tensor carries a site; others stop a chain.
                    key = source if tensor == 0 else (source, tensor)
                    self.consumers.setdefault(key, []).append(name)
        outputs = config["output_layers"]
        if outputs and isinstance(outputs[0], str):
            outputs = [outputs]
        self.outputs = {source for source, _, _ in outputs}


def _histories(value):
    """Every `keras_history` (layer, node, tensor) in a node's serialized arguments."""
    if isinstance(value, dict):
        history = value.get("config", {}).get("keras_history") if isinstance(value.get("config"), dict) else None
        if value.get("class_name") == "__keras_tensor__" and history:
            return [tuple(history)]
        return [h for v in value.values() for h in _histories(v)]
    if isinstance(value, (list, tuple)):
        return [h for v in value for h in _histories(v)]
    return []


_FOLLOWER_NAMES = (
    "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax",
    "BatchNormalization", "LayerNormalization", "GroupNormalization", "UnitNormalization", "RMSNormalization",
)


def _follows(layer):
    """Normalization and activation layers: a site goes after them, as after the layer's own activation."""
    return isinstance(layer, tuple(getattr(keras.layers, n) for n in _FOLLOWER_NAMES if hasattr(keras.layers, n)))


def _activation(layer):
    activation = layer.get_config().get("activation") if hasattr(layer, "activation") else None
    return activation if isinstance(activation, str) else None


def _is_softmax(layer):
    return isinstance(layer, keras.layers.Softmax) or (
        isinstance(layer, keras.layers.Activation) and _activation(layer) == "softmax"
    )


def _needs_softmax(model):
    """Whether `model` outputs logits (its last layer is a device layer without activation)."""
    layer = _output_layer(model)
    if _is_softmax(layer) or _activation(layer) == "softmax":
        return False
    if _on_device(layer) and _activation(layer) == "linear":
        return True
    raise ValueError(
        f"`model` must output class probabilities (end in a softmax) or logits (end in a Dense "
        f"layer without activation): BayesFT trains it with sparse categorical cross-entropy. "
        f"Received: model {model.name!r} ending in layer {layer.name!r} ({type(layer).__name__}, "
        f"activation {_activation(layer)!r})"
    )


def _output_layer(model):
    graph = _Graph(model)
    (name,) = graph.outputs
    layer = graph.layers[name]
    return _output_layer(layer) if isinstance(layer, keras.Model) else layer


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
    """Channel dropout on a feature map (the zoo's `SpatialDropout2D`), plain dropout otherwise."""
    if rank == 4:
        return keras.layers.SpatialDropout2D(rate, name=site.dropout_name)
    if rank == 3 and conv:
        return keras.layers.SpatialDropout1D(rate, name=site.dropout_name)
    return keras.layers.Dropout(rate, name=site.dropout_name)


def _named_layers(model, prefix=()):
    """`(path, layer)` of every layer, nested ones included; a path is the names of the models above and the layer's."""
    pairs = []
    for layer in model.layers:
        path = (*prefix, layer.name)
        pairs.append((path, layer))
        if isinstance(layer, keras.Model):
            pairs += _named_layers(layer, path)
    return pairs


def _leaf(variable):
    return variable.path.split("/")[-1]
