"""The upload page in a real headless Chromium: several photos, labels, the uncertain flag, corrections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch

from imaging import load_for_model
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.gateway import GatewayServer, gateway_settings, wait_ready
from tests.support.photos import photo
from tests.support.triton import IMAGE_SIZE
from training.transforms import CLASS_NAMES

pytestmark = [pytest.mark.triton, pytest.mark.slow]


def _browser_api() -> Any:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    return pytest.importorskip("playwright.sync_api", reason="playwright (PyPI) is not installed")


def test_choose_a_photo_and_see_its_label(
    gateway,  # type: ignore[no-untyped-def]
    client: httpx.Client,
    tmp_path: Path,
) -> None:
    sync_api = _browser_api()
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
            result = page.locator(".card[data-label]")
            result.wait_for(timeout=20_000)
            assert result.get_attribute("data-label") == expected["predicted_class"]
            text = result.locator(".label").inner_text()
            assert expected["predicted_class"] in text
            assert f"{100 * expected['confidence']:.1f}%" in text
            assert "model version 1" in result.locator(".meta").inner_text()
        finally:
            browser.close()


# Photos whose answers from the tiny fixture model differ: a confident cat, a confident dog and an
# uncertain one (confidence under the default UNCERTAIN_THRESHOLD 0.6); checked below, not assumed.
SHELTER_PHOTOS = (7006, 7004, 7000)


def test_staff_upload_several_photos_and_correct_one_label_in_one_click(triton: Any, tmp_path: Path) -> None:
    sync_api = _browser_api()
    paths = []
    for seed in SHELTER_PHOTOS:
        paths.append(tmp_path / f"photo_{seed}.jpg")
        paths[-1].write_bytes(photo(seed))
    # What the served model answers (the same network Triton serves, through the served decode path).
    batch = torch.from_numpy(np.stack([load_for_model(p.read_bytes(), IMAGE_SIZE) for p in paths]))
    with torch.no_grad():
        probabilities = torch.softmax(triton.classifier(batch), dim=1).numpy()
    expected = {
        p.name: (CLASS_NAMES[int(row.argmax())], float(row.max()))
        for p, row in zip(paths, probabilities, strict=True)
    }
    assert {label for label, _ in expected.values()} == set(CLASS_NAMES)
    assert sorted(confidence < 0.6 for _, confidence in expected.values()) == [False, False, True]

    settings = gateway_settings(triton.grpc_url, api_key="shelter-key")
    with GatewayServer(settings) as gateway, httpx.Client(base_url=gateway.url, timeout=30) as client:
        wait_ready(client)
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page()
                page.goto(gateway.url + "/")
                # Two photos through the picker at once, the third dropped onto the page.
                page.set_input_files("#file", [str(p) for p in paths[:2]])
                _drop_file(page, paths[2])
                cards = page.locator(".card[data-label]")
                page.wait_for_function("document.querySelectorAll('.card[data-label]').length === 3")
                shown = {}
                for i in range(3):
                    card = cards.nth(i)
                    name = card.get_attribute("data-file") or ""
                    label, confidence = (
                        card.get_attribute("data-label"),
                        card.get_attribute("data-confidence"),
                    )
                    shown[name] = (label, float(confidence or "nan"))
                    assert (
                        f"{label} — {100 * float(confidence or 0):.1f}%"
                        in card.locator(".label").inner_text()
                    )
                    flagged = card.get_attribute("data-uncertain") == "true"
                    assert flagged == (card.locator(".flag").count() == 1)
                    assert flagged == (float(confidence or 0) < 0.6)
                assert set(shown) == set(expected)
                for name, (label, confidence) in shown.items():
                    assert label == expected[name][0]
                    assert confidence == pytest.approx(expected[name][1], abs=1e-4)
                assert "1 uncertain" in page.locator("#summary").inner_text()

                # Staff correct the uncertain one: one click on the other label.
                wrong = next(n for n, (_, c) in shown.items() if c < 0.6)
                truth = next(c for c in CLASS_NAMES if c != shown[wrong][0])
                card = page.locator(f".card[data-file='{wrong}']")
                fix = card.locator(f"button[data-true-label='{truth}']")
                fix.click()  # no key typed yet: the service refuses, the page says what to do
                card.locator(".status.error").wait_for(timeout=10_000)
                assert "API key" in card.locator(".status").inner_text()
                assert (
                    client.get("/stats?window=all", headers={"X-API-Key": "shelter-key"}).json()["counts"][
                        "labelled"
                    ]
                    == 0
                )
                page.fill("#apikey", "shelter-key")
                fix.click()
                page.wait_for_selector(f".card[data-file='{wrong}'][data-feedback='{truth}']", timeout=10_000)
                assert f"corrected to {truth}" in card.locator(".status").inner_text()
                assert fix.is_disabled()

                # The key lives in this tab's sessionStorage: a reload keeps it, nothing else does.
                page.reload()
                assert page.input_value("#apikey") == "shelter-key"
            finally:
                browser.close()

        stats = client.get("/stats?window=all", headers={"X-API-Key": "shelter-key"}).json()
        assert stats["counts"]["predictions"] == 3
        assert stats["counts"]["labelled"] == 1
        assert stats["quality"]["accuracy"] == 0.0  # the one labelled prediction was wrong


def _drop_file(page: Any, path: Path) -> None:
    """A real drop event on the drop zone carrying ``path`` as a File (what a drag from a folder sends)."""
    page.evaluate(
        """([name, bytes]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], name, { type: "image/jpeg" }));
            const zone = document.getElementById("drop");
            for (const type of ["dragenter", "dragover", "drop"]) {
                const init = { dataTransfer: transfer, bubbles: true, cancelable: true };
                zone.dispatchEvent(new DragEvent(type, init));
            }
        }""",
        [path.name, list(path.read_bytes())],
    )
