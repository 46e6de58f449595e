"""`python -m bayesft_keras.bridge`: see `bayesft_keras.bridge.runner`."""

from bayesft_keras.bridge.runner import main

main()
