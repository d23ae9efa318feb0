"""What several test folders share: the tiny model and its repositories, a test Triton, the gateway
in-process, synthetic photos and the headless browser's flags.

Fixtures stay in conftest.py files (tests/conftest.py starts the session's Triton); the modules
here are plain functions and classes any test or conftest imports.
"""
