"""The training lab: datasets from soundfonts or recordings, performances, audio analysis, training and evaluation.

It builds presets for the runtime (`engine/`) and may import it; the runtime never imports this package.
"""
