"""Small helpers every layer of the package may use: argument checks and atomic file writes.

Nothing here imports from the rest of `bayesft_keras`.
"""
