"""Hand-crafted image features (pure functions) and the per-image feature cache."""

from .cache import CacheStats, FeatureCache

__all__ = ["CacheStats", "FeatureCache"]
