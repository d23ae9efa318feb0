"""Bulk scoring of photo catalogues through Triton gRPC (``python -m scoring``)."""
