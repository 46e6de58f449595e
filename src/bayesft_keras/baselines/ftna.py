"""FTNA baseline: error-correcting output codes instead of a softmax (Liu et al., DAC 2019).

As the BayesFT authors implement it (BayesFTNA `assets/FTNA.py`): every class
gets a 7-bit codeword from a table at minimum Hamming distance 3 (their
`Generate_Search_Table`); the network's output layer has one sigmoid unit
per bit and is trained with the mean squared error against the codeword of
the label; a prediction is the class whose codeword is nearest, in Hamming
distance, to the outputs thresholded at 0.5. A drift that flips one output
bit is corrected.

Differences from the authors' code, both deliberate:

- Codewords are given to classes in class order, from a seeded random choice
  of the table (their `Searching_code`). The authors first train a plain
  network and give the largest codewords to the most confused classes
  (`CodeToClass`); that costs a second training, so it is left out of the
  same-budget comparison. `assign_codes` reproduces it for a confusion matrix.
- The output units have a sigmoid, as in Liu et al. and in the authors' MLP;
  their LeNet-5, VGG and ResNet heads leave it out.
"""

import itertools

import keras
import numpy as np
from keras import ops

from bayesft_keras.tuning import recipe
from bayesft_keras.tuning.hypermodel import BayesFTHyperModel
from bayesft_keras.utils import checks

CODE_LENGTH = 7
MIN_DISTANCE = 3


def search_table(length=CODE_LENGTH, min_distance=MIN_DISTANCE):
    """The authors' table of codewords: a greedy code at the given minimum distance.

    Starts from the all-ones word and adds, in order of weight, every word at
    distance >= `min_distance` from all words taken; then again with the
    distance lowered by one, down to 3 (their `Generate_Search_Table`). For
    7 bits at distance 3 it has 16 words.

    Args:
        length: bits per codeword.
        min_distance: the minimum Hamming distance (>= 3).

    Returns:
        A list of bit strings, e.g. `"1110000"`.
    """
    checks.count("length", length, 2)
    checks.count("min_distance", min_distance, 3)
    if min_distance > length:
        raise ValueError(
            f"`min_distance` must be at most `length` ({length}). Received: min_distance={min_distance}"
        )
    words = [
        "".join("1" if k in ones else "0" for k in range(length))
        for weight in range(length + 1)
        for ones in itertools.combinations(range(length), weight)
    ]
    table = [words[-1]]
    h = min_distance
    while h >= 3:
        for word in words:
            if all(hamming(word, t) >= h for t in table):
                table.append(word)
        h -= 1
    return table


def hamming(a, b):
    """Hamming distance of two equal-length bit strings."""
    return sum(x != y for x, y in zip(a, b))


def make_codebook(num_classes=10, length=CODE_LENGTH, min_distance=MIN_DISTANCE, seed=0):
    """The codebook: one codeword per class, a float32 array `(num_classes, length)` of 0/1.

    `num_classes` words are drawn (seeded) from `search_table` and sorted,
    as the authors' `Searching_code`; row `c` is the codeword of class `c`.

    Args:
        num_classes: number of classes (>= 2).
        length: bits per codeword.
        min_distance: the table's minimum Hamming distance.
        seed: seed of the draw.
    """
    checks.count("num_classes", num_classes, 2)
    table = search_table(length, min_distance)
    if num_classes > len(table):
        raise ValueError(
            f"A {length}-bit table at minimum distance {min_distance} has {len(table)} codewords, "
            f"fewer than the classes. Received: num_classes={num_classes}; use longer codewords."
        )
    order = np.random.default_rng(seed).permutation(len(table))
    chosen = sorted(table[i] for i in order[:num_classes])
    return _as_array(chosen)


def assign_codes(confusion, codebook):
    """The authors' `CodeToClass`: the most confused classes get the largest codewords.

    Off-diagonal entries of `confusion` (rows: true class, columns:
    predicted) are visited from the largest; the first time a column's class
    is met it takes the largest codeword left (codewords in string order).
    Classes never met take the rest, in class order.

    Args:
        confusion: a `(classes, classes)` confusion matrix.
        codebook: `(classes, length)` codewords (e.g. `make_codebook`).

    Returns:
        The codebook reordered: row `c` is the codeword of class `c`.
    """
    confusion = np.asarray(confusion, dtype="float64")
    codes = sorted(_as_strings(codebook))
    m = len(codes)
    if confusion.shape != (m, m):
        raise ValueError(
            f"`confusion` must be ({m}, {m}), one row and column per codeword. "
            f"Received: confusion of shape {confusion.shape}"
        )
    off = confusion.copy()
    np.fill_diagonal(off, -np.inf)
    flat = np.argsort(-off, axis=None, kind="stable")  # ties: row-major, as np.where
    assigned = {}
    for index in flat:
        _, column = divmod(int(index), m)
        if column not in assigned and np.isfinite(off.flat[index]):
            assigned[column] = codes.pop(-1)
    for c in range(m):
        if c not in assigned:
            assigned[c] = codes.pop(-1)
    return _as_array([assigned[c] for c in range(m)])


def minimum_distance(codebook):
    """The smallest Hamming distance between two codewords of `codebook`."""
    codes = _as_strings(codebook)
    return min(hamming(a, b) for a, b in itertools.combinations(codes, 2))


def encode(labels, codebook):
    """Codewords of integer `labels`: shape `labels.shape + (length,)`."""
    labels = ops.cast(ops.convert_to_tensor(labels), "int32")
    return ops.take(ops.convert_to_tensor(np.asarray(codebook, "float32")), labels, axis=0)


def decode(outputs, codebook):
    """Class indices (int32) of the codewords nearest to `outputs` thresholded at 0.5.

    Ties go to the lowest class index. Traceable (keras.ops), any backend.
    """
    codes = ops.convert_to_tensor(np.asarray(codebook, "float32"))
    outputs = ops.convert_to_tensor(outputs)
    bits = ops.cast(outputs >= 0.5, "float32")
    distance = ops.sum(ops.abs(ops.expand_dims(bits, -2) - codes), axis=-1)
    return ops.cast(ops.argmin(distance, axis=-1), "int32")


@keras.saving.register_keras_serializable(package="bayesft_keras")
class CodewordMSE(keras.losses.Loss):
    """FTNA's loss: mean squared error between the outputs and the label's codeword.

    Takes integer labels, as `sparse_categorical_crossentropy`.

    Args:
        codebook: `(classes, length)` codewords of 0/1 (`make_codebook`).
        name, reduction, dtype: as `keras.losses.Loss`.
    """

    def __init__(self, codebook, name="codeword_mse", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.codebook = _check_codebook(codebook)

    def call(self, y_true, y_pred):
        y_true = ops.reshape(y_true, ops.shape(y_pred)[:-1])
        target = ops.cast(encode(y_true, self.codebook), y_pred.dtype)
        return ops.mean(ops.square(target - y_pred), axis=-1)

    def get_config(self):
        config = super().get_config()
        config["codebook"] = self.codebook.tolist()
        return config


@keras.saving.register_keras_serializable(package="bayesft_keras")
class CodewordAccuracy(keras.metrics.Mean):
    """FTNA's accuracy: nearest-codeword decoding compared with integer labels.

    Pass it as `metric=` to `evaluate_drift` (or to `compile`) for an FTNA
    model; plain "accuracy" would take the arg-max of the code bits.

    Args:
        codebook: `(classes, length)` codewords of 0/1 (`make_codebook`).
        name, dtype: as `keras.metrics.Mean`.
    """

    def __init__(self, codebook, name="accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.codebook = _check_codebook(codebook)

    def update_state(self, y_true, y_pred, sample_weight=None):
        predicted = decode(y_pred, self.codebook)
        y_true = ops.reshape(ops.cast(y_true, "int32"), ops.shape(predicted))
        hits = ops.cast(ops.equal(predicted, y_true), self.dtype)
        return super().update_state(hits, sample_weight=sample_weight)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "codebook": self.codebook.tolist()}


def sigmoid_head(model, length=None):
    """A functional model whose softmax output is replaced by a sigmoid per unit.

    `model`'s last layer must be an Activation (the zoo's `probabilities`);
    its input becomes the code bits. The layers are shared with `model`.

    Args:
        model: a functional `keras.Model` ending in an Activation layer.
        length: the expected number of code bits, checked if given.
    """
    last = model.layers[-1] if getattr(model, "layers", None) else None
    if not isinstance(last, keras.layers.Activation) or len(model.outputs) != 1:
        raise ValueError(
            "FTNA replaces the softmax of a functional model that ends in an Activation layer "
            f"(the architecture zoo's 'probabilities'). Received: model {model.name!r} ending in "
            f"{type(last).__name__}"
        )
    logits = last.input
    if length is not None and logits.shape[-1] != length:
        raise ValueError(
            f"The layer before the softmax has {logits.shape[-1]} units; FTNA needs one per code "
            f"bit. Received: length={length}. Build the network with num_classes={length}."
        )
    outputs = keras.layers.Activation("sigmoid", name="code_bits")(logits)
    return keras.Model(model.inputs, outputs, name=f"{model.name}_ftna")


def build(arch, codebook=None, *, num_classes=10, dropout=None, **kwargs):
    """An FTNA network of the architecture zoo: `arch` with one sigmoid output per code bit.

    Args:
        arch: an architecture name (`bayesft_keras.architectures.available()`).
        codebook: the codewords; None: `make_codebook(num_classes)`.
        num_classes: the number of classes (ignored with `codebook`).
        dropout: as `architectures.build`.
        **kwargs: the other arguments of `architectures.build`.

    Returns:
        `(model, codebook)`: the uncompiled model and its codebook.
    """
    from bayesft_keras import architectures

    codebook = make_codebook(num_classes) if codebook is None else _check_codebook(codebook)
    base = architectures.build(arch, dropout, num_classes=codebook.shape[1], **kwargs)
    return sigmoid_head(base, codebook.shape[1]), codebook


class FTNAHyperModel(BayesFTHyperModel):
    """The FTNA baseline as a hypermodel: a zoo network with a codeword head.

    As `BayesFTHyperModel` (same sites, recipe and one-cycle schedule), but
    the network outputs `code_length` sigmoid bits, is trained with
    `CodewordMSE` and scored with `CodewordAccuracy` (`metric`).

    Args:
        arch, input_shape: as `BayesFTHyperModel`.
        num_classes: number of classes (None: 10).
        code_length: bits per codeword (the authors' 7).
        min_distance: minimum Hamming distance of the table (the authors' 3).
        codebook: explicit `(classes, bits)` codewords instead.
        codebook_seed: seed of the codeword draw.
        build_fn: as `BayesFTHyperModel`; its model must output the code
            bits (`(batch, code_length)`, sigmoid) and is not modified.
        **kwargs: the other arguments of `BayesFTHyperModel`.
    """

    def __init__(
        self,
        arch=None,
        input_shape=None,
        num_classes=None,
        *,
        code_length=CODE_LENGTH, min_distance=MIN_DISTANCE,  # the drawn codebook's table
        codebook=None, codebook_seed=0,
        build_fn=None,
        **kwargs,
    ):
        if codebook is None:
            codebook = make_codebook(10 if num_classes is None else num_classes, code_length,
                                     min_distance, codebook_seed)
        self.codebook = _check_codebook(codebook)
        if num_classes is not None and num_classes != self.codebook.shape[0]:
            raise ValueError(
                f"`codebook` has {self.codebook.shape[0]} codewords for {num_classes} classes. "
                f"Received: num_classes={num_classes}"
            )
        bits = self.codebook.shape[1]
        if build_fn is None:
            super().__init__(arch, input_shape, bits, **kwargs)
        else:
            super().__init__(arch, input_shape, None, build_fn=build_fn, **kwargs)

    def build(self, hp):
        if self._blueprint is None:
            return super().build(hp)
        model = sigmoid_head(self._blueprint.build(self.declare_hyperparameters(hp)),
                             self.codebook.shape[1])
        if self.initial_weights is not None:  # a warm start: all but the codeword head
            model.load_weights(self.initial_weights, skip_mismatch=True)
        steps = None if self.steps_per_epoch is None else self.epochs * self.steps_per_epoch
        self._compile(model, steps)
        return model

    def metric(self):
        """The drift-evaluation metric of this model: `CodewordAccuracy`."""
        return CodewordAccuracy(self.codebook)

    def _compile(self, model, total_steps):
        recipe.compile_model(
            model, self.optimizer(total_steps), total_steps,
            loss=CodewordMSE(self.codebook), metrics=[CodewordAccuracy(self.codebook)],
        )


def _as_array(codes):
    return np.array([[int(b) for b in code] for code in codes], dtype="float32")


def _as_strings(codebook):
    return ["".join(str(int(b)) for b in row) for row in _check_codebook(codebook)]


def _check_codebook(codebook):
    try:
        array = np.asarray(codebook, dtype="float32")
    except (TypeError, ValueError):
        array = None
    if (
        array is None or array.ndim != 2 or array.shape[0] < 2 or array.shape[1] < 1
        or not np.all((array == 0) | (array == 1))
        or len({tuple(r) for r in array.tolist()}) != len(array)
    ):
        raise ValueError(
            "`codebook` must be distinct codewords of 0/1, shape (classes >= 2, bits). "
            f"Received: codebook={codebook!r}"
        )
    return array
