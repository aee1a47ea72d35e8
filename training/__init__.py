"""Training: data (corpus, leakage, split, examples), fitting (BERT, linear), evaluation, and the CLI.

It writes versions into the registry of :mod:`newsmodel`, the served model's package, which never imports
this one.
"""
