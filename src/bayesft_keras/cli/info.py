from bayesft_keras.cli.app import app
from bayesft_keras.cli.app import package_version


@app.command()
def info():
    """Show the versions and the Keras backend in use."""
    import keras

    print(f"bayesft-keras {package_version()}")
    print(f"keras {keras.__version__} (backend: {keras.backend.backend()})")
