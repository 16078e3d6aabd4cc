"""Built-in method adapters, one module per method; each registers itself with
``biqa_bench.methods.register_method``."""
