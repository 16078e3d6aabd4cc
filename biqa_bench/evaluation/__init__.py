"""Analyses: pure functions from predictions to named results and tidy tables."""
