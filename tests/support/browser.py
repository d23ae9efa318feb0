"""The headless Chromium the /docs and upload-page tests drive (through Playwright)."""

from __future__ import annotations

import shutil

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags for a root, sandbox-less, offline machine (without the networking ones Chromium keeps
# dialling Google's hosts and the closed network refuses them).
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
