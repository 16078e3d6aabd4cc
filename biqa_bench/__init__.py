"""biqa-bench: benchmark blind / no-reference image quality assessment methods.

Data flow: dataset registry -> splits -> method.fit/predict -> predictions store ->
analyses -> report. See README.md and the module docstrings for the contracts.
"""

__version__ = "0.1.0"
