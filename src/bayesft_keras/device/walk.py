"""`walk_layers`: every layer of a model, nested models included, on public Keras API.

The package's one walk over a model's layers (chip control, the device copy,
the evaluator's memory estimate, the architectures' dropout sites and FLOPs).
It descends through `model.layers` of every nested `keras.Model`
(Sequential, Functional and subclassed alike).

It yields the layers in the order Keras's own tracker (the private
`Layer._flatten_layers`) does: a model's layers in order, but each nested
model's layers last-first, depth first. The order fixes which per-layer seed
each ReRAM layer of a chip gets (`bayesft_keras.device.chip.resample`), so it
must not change.

Two things the private walk also yields are left out, and no caller needs
them: the `InputLayer` of a Sequential model (`Sequential.layers` hides it;
`bayesft_keras.evaluation.backend.auto_chips_per_pass` counts the model's
inputs itself), and the sublayers of a custom layer that is not a model. The
only such sublayer in the package and its tests is the `DeviceState` inside
each ReRAM layer, which holds device variables and has no output of its own.
"""

import keras


def walk_layers(model, include_self=False):
    """The layers of `model`, nested models' layers included, each once.

    Args:
        model: a `keras.Model` or a `keras.layers.Layer` (a layer that is not
            a model has no sublayers to walk).
        include_self: whether `model` itself comes first.

    Returns:
        A list of layers.
    """
    layers = [model] if include_self else []
    seen = set()

    def visit(layer):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        layers.append(layer)
        if isinstance(layer, keras.Model):
            for sublayer in reversed(layer.layers):
                visit(sublayer)

    if isinstance(model, keras.Model):
        for layer in model.layers:
            visit(layer)
    return layers
