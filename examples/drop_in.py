"""Put an existing Keras model on a simulated ReRAM chip, by hand and with `convert`.

Trains a small CNN on scikit-learn's bundled handwritten digits (offline), then
compares its clean accuracy with its accuracy on drifted chips
(w -> w * exp(theta), theta ~ N(0, sigma^2) per cell).

    python examples/drop_in.py
"""

import keras
import numpy as np

import bayesft_keras as bk
from bayesft_keras import data

SIGMA = 0.8
CHIPS = 10


def drifted_accuracy(model, x, y, chips=CHIPS):
    """Mean and spread of the accuracy over `chips` simulated chips."""
    accuracies = []
    for seed in range(chips):
        bk.resample(model, seed)  # one chip: one drift realization for all batches
        accuracies.append(model.evaluate(x, y, verbose=0)[1])
    return np.mean(accuracies), np.std(accuracies)


def main():
    keras.utils.set_random_seed(0)
    ds = data.load("digits")

    # 1. An existing Keras model, trained as usual.
    model = keras.Sequential(
        [
            keras.Input(ds.input_shape),
            keras.layers.Conv2D(16, 3, activation="relu", padding="same"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(ds.x_train, ds.y_train, epochs=15, batch_size=64, verbose=0)
    clean = model.evaluate(ds.x_test, ds.y_test, verbose=0)[1]

    # 2. By `convert`: the same weights on a drifting 4-bit device.
    device = bk.convert(model, noise=bk.LogNormalDrift(SIGMA), bits=4)
    device.compile(metrics=["accuracy"], loss="sparse_categorical_crossentropy")
    with bk.noise_off(device):
        quantized = device.evaluate(ds.x_test, ds.y_test, verbose=0)[1]
    mean, std = drifted_accuracy(device, ds.x_test, ds.y_test)

    # 3. By hand: the ReRAM layers take the Keras layers' arguments plus the device.
    noise = bk.LogNormalDrift(SIGMA)
    by_hand = keras.Sequential(
        [
            keras.Input(ds.input_shape),
            bk.ReRAMConv2D(16, 3, activation="relu", padding="same", noise=noise, bits=4),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            bk.ReRAMDense(64, activation="relu", noise=noise, bits=4),
            bk.ReRAMDense(10, activation="softmax", noise=noise, bits=4),
        ]
    )
    by_hand.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    by_hand.fit(ds.x_train, ds.y_train, epochs=15, batch_size=64, verbose=0)  # 4-bit QAT
    with bk.noise_off(by_hand):
        qat_clean = by_hand.evaluate(ds.x_test, ds.y_test, verbose=0)[1]
    qat_mean, qat_std = drifted_accuracy(by_hand, ds.x_test, ds.y_test)

    print(f"digits test accuracy, sigma={SIGMA}, {CHIPS} chips")
    print(f"  Keras model, float weights         clean {clean:.3f}")
    print(f"  convert(): 4-bit, no drift         clean {quantized:.3f}")
    print(f"  convert(): 4-bit, drifted chips    {mean:.3f} +- {std:.3f}")
    print(f"  ReRAM layers by hand, 4-bit QAT    clean {qat_clean:.3f}")
    print(f"  ReRAM layers by hand, drifted      {qat_mean:.3f} +- {qat_std:.3f}")


if __name__ == "__main__":
    main()
