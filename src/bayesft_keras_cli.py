"""Entry point of the `bayesft-keras` console script.

It lives outside the `bayesft_keras` package on purpose: importing the package
imports TensorFlow, whose C++ start-up chatter (CUDA probing, CPU features)
goes straight to file descriptor 2 and must be silenced before that import.
Python errors raised by the import are still reported.
"""

import contextlib
import os


@contextlib.contextmanager
def _native_stderr_silenced():
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _probe_devices():
    """Lets TensorFlow probe its devices now: its CUDA probe logs natively on first use."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.list_physical_devices()


def main():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # TensorFlow leaves its oneDNN CPU kernels off on CPUs without AVX-512;
    # with them, convolutions run several times faster (drift sweeps 5x on a
    # 2-core AMD EPYC). TF_ENABLE_ONEDNN_OPTS=0 turns them off.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    with _native_stderr_silenced():
        import bayesft_keras  # noqa: F401  (imports Keras and its backend)

        _probe_devices()
    from bayesft_keras.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
