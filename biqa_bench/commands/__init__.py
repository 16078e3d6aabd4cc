"""CLI command modules; each exposes ``register(app)``. Thin: parse, call the library, render."""
