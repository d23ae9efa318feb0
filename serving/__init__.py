"""Local serving: starts the real Triton server and the gateway, and stops what it started."""
