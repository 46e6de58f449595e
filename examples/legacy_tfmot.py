"""A Keras 2 (tf_keras) pipeline on a drifting ReRAM device, through the tfmot bridge.

For models and pipelines that stay on tf_keras (TF_USE_LEGACY_KERAS=1) and use
tensorflow-model-optimization for quantization-aware training: trains a small
tf_keras CNN on scikit-learn's bundled digits (offline), fine-tunes it with
tfmot QAT on the device's 2-bit weight grid (the grid of bayesft-keras's core
quantizer), then compares post-training quantization with QAT on drifted
chips (w -> w * exp(theta), theta ~ N(0, sigma^2) per cell), with the core's
device models, chip seeds and drift report.

    python examples/legacy_tfmot.py

Writes runs/legacy_tfmot/{qat.h5, ptq.json, qat.json, drift.png}. The saved
QAT model can also be evaluated from the Keras 3 command line, which runs the
bridge in a subprocess:

    bayesft-keras evaluate runs/legacy_tfmot/qat.h5 --chips 10 -o runs/legacy_tfmot/cli
"""

import os

# Before TensorFlow is imported: tf.keras is tf_keras in this process.
os.environ["TF_USE_LEGACY_KERAS"] = "1"

import tf_keras  # noqa: E402

from bayesft_keras import data  # noqa: E402
from bayesft_keras.bridge import legacy_drift  # noqa: E402
from bayesft_keras.bridge import tfmot_qat  # noqa: E402
from bayesft_keras.evaluation import plot_reports  # noqa: E402

BITS = 2
SIGMAS = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
CHIPS = 10
OUT = os.path.join("runs", "legacy_tfmot")


def main():
    tf_keras.utils.set_random_seed(0)
    ds = data.load("digits")
    os.makedirs(OUT, exist_ok=True)

    # 1. An existing tf_keras model, trained as usual in float.
    model = tf_keras.Sequential(
        [
            tf_keras.Input(ds.input_shape),
            tf_keras.layers.Conv2D(16, 3, activation="relu", padding="same"),
            tf_keras.layers.MaxPooling2D(),
            tf_keras.layers.Flatten(),
            tf_keras.layers.Dense(64, activation="relu"),
            tf_keras.layers.Dense(10, activation="softmax"),
        ],
        name="cnn",
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(ds.x_train, ds.y_train, epochs=15, batch_size=64, verbose=0)

    # 2. tfmot quantization-aware fine-tuning on the device grid: every Dense /
    #    Conv kernel per output channel and every bias on BITS bits, exactly as
    #    bayesft_keras.device.quantization.quantize_weight does.
    qat = tfmot_qat.quantize_model(model, bits=BITS)
    qat.compile(tf_keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    qat.fit(ds.x_train, ds.y_train, epochs=5, batch_size=64, verbose=0)
    qat.save(os.path.join(OUT, "qat.h5"))  # load it inside tfmot_qat.quantize_scope()

    # 3. Drift sweeps with the core's device model and report format: the float
    #    model quantized after training (bits=BITS) against the QAT model (its
    #    QuantizeConfig gives the precision). The same seed gives the same chips.
    common = dict(sigmas=SIGMAS, chips=CHIPS, seed=0, dataset="digits/test", progress=False)
    ptq = legacy_drift.evaluate_drift_legacy(
        model, ds.x_test, ds.y_test, bits=BITS, name=f"post-training {BITS}-bit", **common
    )
    qat_report = legacy_drift.evaluate_drift_legacy(
        qat, ds.x_test, ds.y_test, name=f"tfmot QAT {BITS}-bit", **common
    )
    ptq.to_json(os.path.join(OUT, "ptq.json"))
    qat_report.to_json(os.path.join(OUT, "qat.json"))
    plot_reports([ptq, qat_report], os.path.join(OUT, "drift.png"), title="tf_keras CNN on drifted chips")

    print(f"digits test accuracy, {BITS}-bit device, mean over {CHIPS} chips")
    print("  sigma   post-training   tfmot QAT")
    for sigma, a, b in zip(SIGMAS, ptq.mean(), qat_report.mean()):
        print(f"  {sigma:5.2f}   {a:13.3f}   {b:9.3f}")
    print(f"Wrote {OUT}/qat.h5, ptq.json, qat.json, drift.png")


if __name__ == "__main__":
    main()
