"""FastAPI gateway in front of Triton: upload a photo, get cat or dog (``python -m gateway``)."""

from gateway.app import create_app
from gateway.settings import Settings

__all__ = ["Settings", "create_app"]
