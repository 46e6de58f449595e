"""FTNA baseline: codebook, encoding/decoding, a LeNet-5 on real digits, drift evaluation.

The torch-backend check of FTNA is in test_awp.py (one subprocess for both baselines).
"""

import itertools

import keras
import numpy as np
import pytest

from bayesft_keras import data
from bayesft_keras import evaluate_drift
from bayesft_keras import LogNormalDrift
from bayesft_keras import noise_off
from bayesft_keras.baselines import ftna
from bayesft_keras.baselines import make_hypermodel
from bayesft_keras.baselines import run_baseline


def test_search_table_is_the_authors_greedy_code():
    table = ftna.search_table(7, 3)
    # The authors' Generate_Search_Table(7, 3): all ones first, then by weight.
    assert table[:4] == ["1111111", "0000000", "1110000", "1001100"]
    assert len(table) == 16  # a perfect Hamming (7, 4) code
    assert min(ftna.hamming(a, b) for a, b in itertools.combinations(table, 2)) == 3


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_codebook_has_minimum_distance_three(seed):
    codebook = ftna.make_codebook(10, 7, 3, seed=seed)
    assert codebook.shape == (10, 7)
    assert set(np.unique(codebook)) == {0.0, 1.0}
    assert ftna.minimum_distance(codebook) >= 3
    strings = ["".join(str(int(b)) for b in row) for row in codebook]
    assert strings == sorted(strings)  # the authors' Searching_code sorts its choice
    assert set(strings) <= set(ftna.search_table())


def test_decode_inverts_encode_and_corrects_one_flipped_bit():
    codebook = ftna.make_codebook(10)
    labels = np.arange(10, dtype="int32").repeat(3)
    codes = keras.ops.convert_to_numpy(ftna.encode(labels, codebook))
    np.testing.assert_array_equal(codes, codebook[labels])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(ftna.decode(codes, codebook)), labels)
    # Soft outputs on the right side of 0.5, and any single flipped bit, still decode.
    soft = np.where(codes > 0.5, 0.7, 0.2).astype("float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(ftna.decode(soft, codebook)), labels)
    for bit in range(7):
        flipped = codes.copy()
        flipped[:, bit] = 1 - flipped[:, bit]
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(ftna.decode(flipped, codebook)), labels)


def test_assign_codes_gives_largest_codewords_to_most_confused_classes():
    codebook = ftna.make_codebook(3, 7, 3, seed=0)
    confusion = np.array([[50, 0, 9], [4, 40, 0], [0, 1, 45]])
    assigned = ftna.assign_codes(confusion, codebook)
    ordered = sorted("".join(str(int(b)) for b in row) for row in codebook)
    as_strings = ["".join(str(int(b)) for b in row) for row in assigned]
    # Largest off-diagonal 9 is predicted class 2, then 4 -> class 0, then class 1.
    assert as_strings == [ordered[1], ordered[0], ordered[2]]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: ftna.make_codebook(17), "16 codewords.*num_classes=17"),
        (lambda: ftna.search_table(7, 2), "min_distance.*>= 3.*min_distance=2"),
        (lambda: ftna.CodewordMSE([[0, 1], [0, 1]]), "distinct codewords.*codebook="),
        (lambda: ftna.CodewordAccuracy([[0, 2], [1, 1]]), "0/1.*codebook="),
        (lambda: make_hypermodel("ftna", "lenet5", num_classes=3, codebook=ftna.make_codebook(4)),
         "4 codewords for 3 classes"),
        (lambda: make_hypermodel("softmax", "lenet5"), "one of \\['ftna', 'awp'\\].*'softmax'"),
    ],
)
def test_bad_arguments_quote_the_received_value(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_sigmoid_head_needs_a_final_activation():
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(7)])
    with pytest.raises(ValueError, match="ends in an Activation.*Dense"):
        ftna.sigmoid_head(plain)


def test_loss_and_metric_round_trip_through_config():
    codebook = ftna.make_codebook(10, seed=3)
    for obj in (ftna.CodewordMSE(codebook), ftna.CodewordAccuracy(codebook)):
        clone = type(obj).from_config(obj.get_config())
        np.testing.assert_array_equal(clone.codebook, codebook)
    loss = ftna.CodewordMSE(codebook)
    y = np.array([0, 5])
    assert float(loss(y, codebook[y])) == 0.0
    assert float(loss(y, 1 - codebook[y])) == 1.0


@pytest.mark.slow
def test_ftna_lenet5_learns_real_digits_and_plugs_into_evaluate_drift(tmp_path):
    # mnist5k: 5,000 real MNIST digits (3,500 train, 1,000 test).
    ds = data.load("mnist5k")
    model, report = run_baseline(
        "ftna", ds, "lenet5", sigmas=[0.0, 0.5], chips=4, epochs=4, batch_size=64,
        noise=LogNormalDrift(0.5),
    )
    assert model.output_shape == (None, 7)
    assert model.layers[-1].get_config()["activation"] == "sigmoid"
    assert report.clean >= 0.9, report.clean  # measured 0.95 (TensorFlow, 4 epochs)
    assert 0.3 < report.mean()[1] <= report.clean + 0.02
    # Saved and loaded, it scores the same clean accuracy with the decoding metric.
    model.save(tmp_path / "ftna.keras")
    loaded = keras.models.load_model(tmp_path / "ftna.keras")
    again = evaluate_drift(loaded, (ds.x_test, ds.y_test), sigmas=[0.0], chips=1,
                           metric=ftna.CodewordAccuracy(ftna.make_codebook()))
    assert again.clean == pytest.approx(report.clean, abs=1e-6)
    # The same number as decoding the clean predictions by hand.
    with noise_off(loaded):
        outputs = loaded.predict(ds.x_test, verbose=0)
    predicted = keras.ops.convert_to_numpy(ftna.decode(outputs, ftna.make_codebook()))
    assert np.mean(predicted == ds.y_test) == pytest.approx(report.clean, abs=1e-6)


def test_ftna_builds_on_other_zoo_architectures():
    model, codebook = ftna.build("vgg11", width=0.125, input_shape=(32, 32, 3))
    assert model.output_shape == (None, codebook.shape[1])
    hypermodel = make_hypermodel("ftna", "mlp", (8, 8, 1), 10, epochs=1)
    built = hypermodel.build(hypermodel.hyperparameters())
    assert built.output_shape == (None, 7)
    assert isinstance(built.loss, ftna.CodewordMSE)

