"""General statistical models: arrays (or a formula and a frame) in, frozen results out.

Nothing in this subpackage knows about the study (no trusts, pairs, arms or outcomes): it imports only
numpy/scipy/pandas and the package's foundation modules (errors, option checks).
"""
