"""The interface every package agrees on, defined once: the served model's names (``contract.model``),
the project's paths (``contract.paths``) and what the served model must look like to its clients
(``contract.model_info``).

Standard library only: the gateway image (no torch, no training code) and the model puller carry it.
"""
