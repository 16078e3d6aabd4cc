"""Shared deep-learning parts of the deep methods: offline backbones (:mod:`.backbones`), image
sources and device-side preprocessing (:mod:`.data`), the training loop with checkpoints and
validation-based selection (:mod:`.trainer`) and the method base class (:mod:`.method`)."""
