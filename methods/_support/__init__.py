"""Support code used by particular built-in adapters (not adapters themselves, so method discovery,
which imports ``methods/*.py``, skips this package): IEIT's selective enhancement (:mod:`.enhance`)
and the cached pre-training stages of QAMT and HCL (:mod:`.pretrain`). Machinery shared by every
deep or feature method stays in the core package: :mod:`biqa_bench.nn`, :mod:`biqa_bench.features`."""
