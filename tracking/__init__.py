"""Durable prediction log, ground-truth feedback, live quality statistics and the response cache."""

from tracking.tracker import PerformanceTracker, get_tracker

__all__ = ["PerformanceTracker", "get_tracker"]
