"""Dropout sites in any Sequential or Functional Keras model: where they go.

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
their sites inside them. `bayesft_keras.tuning.site_copy` builds the copy
that has them.
"""

import dataclasses

import keras

from bayesft_keras.device.layers import REPLACEMENTS
from bayesft_keras.device.layers import DeviceLayerMixin
from bayesft_keras.device.layers import ReRAMDense

RULES = ("all", "dense")
OUTPUT_SITE = "output"  # as `tuning.hypermodel.OUTPUT_SITE`: the site of `output_rate_range`


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
    if isinstance(model, keras.Sequential) and not model.built:
        raise ValueError(
            f"`{argument}` must be built: start the Sequential model with `keras.Input(shape)`, or call it "
            f"on data. Received: unbuilt {argument} {model.name!r}"
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
    """Whether `model` is Sequential or Functional: symbolic inputs, and (Functional) a config of its
    layers' calls. A subclassed model has neither."""
    try:
        if not getattr(model, "inputs", None):
            return False
    except (AttributeError, ValueError):
        return False
    if isinstance(model, keras.Sequential):
        return True
    try:
        config = model.get_config()
    except Exception:  # noqa: BLE001  (a subclassed model's own get_config may fail in any way)
        return False
    return isinstance(config, dict) and "layers" in config and "output_layers" in config


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
    taken = {layer.name for _, layer in named_layers(model)} | set(names)
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


# -- the plan ------------------------------------------------------------------


def _chosen(model, sites):
    """The names of the layers `sites` picks, over every nesting level."""
    layers = [layer for _, layer in named_layers(model) if not isinstance(layer, keras.layers.InputLayer)]
    if isinstance(sites, str):
        if sites not in RULES:
            raise ValueError(
                f"`sites` must be one of {list(RULES)} or a list of layer names. Received: sites={sites!r}"
            )
        if sites == "all":
            return {layer.name for layer in layers if _on_device(layer)}
        return {
            layer.name for layer in layers if type(layer) is keras.layers.Dense or isinstance(layer, ReRAMDense)
        }
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


def needs_softmax(model):
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


def named_layers(model, prefix=()):
    """`(path, layer)` of every layer, nested ones included; a path names the models above, then the layer."""
    pairs = []
    for layer in model.layers:
        path = (*prefix, layer.name)
        pairs.append((path, layer))
        if isinstance(layer, keras.Model):
            pairs += named_layers(layer, path)
    return pairs
