from bayesft_keras.cli.app import app


@app.command()
def info():
    """Show the versions and the Keras backend in use."""
    import keras

    import bayesft_keras

    print(f"bayesft-keras {bayesft_keras.__version__}")
    print(f"keras {keras.__version__} (backend: {keras.backend.backend()})")
