import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from bayesft_keras.device import quantization


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_per_channel_grid_has_the_device_levels(bits, rng):
    w = rng.standard_normal((64, 5)).astype("float32")
    q = ops.convert_to_numpy(quantization.quantize_weight(w, bits))
    n_max = 2 ** (bits - 1) - 1
    for c in range(w.shape[1]):
        scale = np.abs(w[:, c]).max() / n_max
        k = q[:, c] / scale
        np.testing.assert_allclose(k, np.round(k), atol=1e-4)  # on the grid
        assert np.abs(k).max() <= n_max + 1e-4
        assert len(np.unique(np.round(k))) <= quantization.num_levels(bits)
        # Nearest level: error at most half a step.
        assert np.abs(q[:, c] - w[:, c]).max() <= scale / 2 + 1e-6


def test_matches_tensorflow_fake_quant_narrow_range(rng):
    w = rng.standard_normal((3, 3, 8, 16)).astype("float32")
    m = np.abs(w).reshape(-1, 16).max(axis=0)
    expected = tf.quantization.fake_quant_with_min_max_vars_per_channel(
        w, -m, m, num_bits=4, narrow_range=True
    ).numpy()
    got = ops.convert_to_numpy(quantization.quantize_weight(w, 4))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_per_tensor_uses_one_range(rng):
    w = rng.standard_normal((32, 4)).astype("float32")
    w[:, 0] *= 100  # one channel dominates the range
    q = ops.convert_to_numpy(quantization.quantize_weight(w, 3, per_channel=False))
    scale = np.abs(w).max() / 3
    np.testing.assert_allclose(q / scale, np.round(q / scale), atol=1e-4)
    # The small channels collapse to few levels under a per-tensor range.
    assert len(np.unique(q[:, 1])) <= 3


def test_depthwise_kernel_channels_are_input_times_multiplier(rng):
    w = rng.standard_normal((3, 3, 4, 2)).astype("float32")
    q = ops.convert_to_numpy(quantization.quantize_weight(w, 3, channel_axes=(-2, -1)))
    for i in range(4):
        for j in range(2):
            scale = np.abs(w[:, :, i, j]).max() / 3
            k = q[:, :, i, j] / scale
            np.testing.assert_allclose(k, np.round(k), atol=1e-4)
            assert np.abs(k).max() == pytest.approx(3, abs=1e-4)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="uses tf.GradientTape")
def test_straight_through_gradient_is_identity(rng):
    w = keras.Variable(rng.standard_normal((16, 3)).astype("float32"))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(quantization.quantize_weight(w, 3) * 2.0)
    grad = tape.gradient(loss, w.value)
    np.testing.assert_allclose(np.asarray(grad), np.full((16, 3), 2.0))


def test_zero_channel_and_full_precision():
    w = np.zeros((4, 2), "float32")
    np.testing.assert_array_equal(ops.convert_to_numpy(quantization.quantize_weight(w, 4)), w)
    x = np.linspace(-1, 1, 7).astype("float32")
    assert quantization.quantize_weight(x, None) is x


def test_activation_quantization_is_per_sample(rng):
    x = rng.standard_normal((2, 10)).astype("float32")
    x[1] *= 1000.0
    q = ops.convert_to_numpy(quantization.quantize_activation(x, 4))
    alone = ops.convert_to_numpy(quantization.quantize_activation(x[:1], 4))
    np.testing.assert_array_equal(q[:1], alone)  # independent of the rest of the batch
    assert len(np.unique(q[0])) <= 15


@pytest.mark.parametrize("bits", [0, 1, 17, 2.5, "4", True])
def test_invalid_bits_are_rejected_with_the_value(bits):
    with pytest.raises(ValueError, match=f"bits.*Received: bits={bits!r}"):
        quantization.validate_bits(bits)
