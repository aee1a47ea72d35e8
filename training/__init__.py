"""Training, evaluation and the model registry.

Importing this package is cheap: torch and transformers are imported only by the modules that need them
(``training.inference``, …), so the registry can be read from light processes.
"""
