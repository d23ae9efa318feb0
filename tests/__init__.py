"""The test suite, a package so shared helpers import by name (``from tests.support.triton import …``).

pyproject's pytest ``pythonpath`` puts the checkout first on ``sys.path``; no test edits ``sys.path``.
"""
