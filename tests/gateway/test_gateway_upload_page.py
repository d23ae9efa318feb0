"""The upload page in a real headless Chromium: choose a file, see the label and confidence."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from gateway_helpers import photo

pytestmark = [pytest.mark.triton, pytest.mark.slow]

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


def test_choose_a_photo_and_see_its_label(
    gateway,  # type: ignore[no-untyped-def]
    client: httpx.Client,
    tmp_path: Path,
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (PyPI) is not installed")
    image = tmp_path / "pet.jpg"
    image.write_bytes(photo(42))
    # no-cache: this answer is not stored, so the page's own upload is answered by Triton too.
    expected = client.post(
        "/predict", files={"file": ("pet.jpg", image.read_bytes())}, headers={"Cache-Control": "no-cache"}
    ).json()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(gateway.url + "/")
            assert page.title() == "Cat or dog?"
            page.set_input_files("#file", str(image))
            result = page.locator("#result[data-label]")
            result.wait_for(timeout=20_000)
            assert result.get_attribute("data-label") == expected["predicted_class"]
            text = result.inner_text()
            assert expected["predicted_class"] in text
            assert f"{100 * expected['confidence']:.1f}%" in text
            assert "model version 1" in page.locator("#meta").inner_text()
        finally:
            browser.close()
