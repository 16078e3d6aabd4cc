"""Errors a user can cause. The CLI shows them as one line; library code raises them."""

from __future__ import annotations


import difflib


def did_you_mean(name: str, candidates) -> str:
    """`` Did you mean 'x'?`` for the closest candidate name, or an empty string."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


class BiqaError(Exception):
    """Base class: the message names the file or thing at fault and the fix."""


class DatasetError(BiqaError):
    """A dataset is unknown, missing, or its files do not match the official layout."""


class SplitError(BiqaError):
    """A split file is malformed or does not match its dataset."""


class MethodError(BiqaError):
    """A method is unknown, misconfigured, or its weights are missing."""


class RunError(BiqaError):
    """A run folder or predictions file is missing or malformed."""


class AnalysisError(BiqaError):
    """An analysis cannot be computed from the given predictions."""
