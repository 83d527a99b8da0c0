"""The web UI in headless Chromium against the real server: the default model trained, then served.

Playwright drives Debian's /usr/bin/chromium (never a downloaded browser). Screenshots go to
test-artifacts/e2e/ for a human to look at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright
from tests.support.models import train_iris
from tests.support.server import Server

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
FLOWER = {"sepal_length": "7.7", "sepal_width": "3.0", "petal_length": "6.1", "petal_width": "2.3"}
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The default Iris model trained into a fresh home and served with 2 workers; yields its URL."""
    tmp = tmp_path_factory.mktemp("ui")
    home = tmp / "home"
    train_iris(home)
    running = Server(home, tmp / "serve.log")
    try:
        running.wait_ready()
        yield running.url
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """Debian's Chromium, headless, with a fresh profile folder."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(10_000)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser: BrowserContext) -> Iterator[Page]:
    """A new tab that fails the test on any console error (a CSP violation, a script error)."""
    tab = browser.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    yield tab
    tab.close()
    # A 422 from the API shows in the console as a failed resource load: that one is expected.
    unexpected = [e for e in errors if "422" not in e]
    assert unexpected == []


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _predict_flower(page: Page, server: str) -> None:
    """Fill the try-it form with the lecture's flower by keyboard alone and submit with Enter."""
    page.goto(f"{server}/ui/models/iris/try")
    page.locator("input[name=sepal_length]").focus()
    for i, value in enumerate(FLOWER.values()):
        if i:
            page.keyboard.press("Tab")  # past the hint: the next input is the next tab stop
        page.keyboard.type(value)
    page.keyboard.press("Enter")
    expect(page.locator("#prediction")).to_have_text("2")


def test_models_page_lists_the_served_model(page: Page, server: str) -> None:
    page.goto(f"{server}/ui")
    row = page.locator("table.data tbody tr", has_text="iris")
    expect(row).to_contain_text("onnx")
    expect(row).to_contain_text("classification")
    expect(row).to_contain_text("accuracy")
    _shot(page, "models")


def test_model_card_shows_metrics_plots_schema_and_curls(page: Page, server: str) -> None:
    page.goto(f"{server}/ui/models/iris")
    expect(page.locator("h1")).to_contain_text("iris")
    assert page.locator("script").count() == 0  # the card is complete without JavaScript
    expect(page.locator("#metrics ~ table").first).to_contain_text("accuracy")
    for img in page.locator(".plots img").all():
        img.scroll_into_view_if_needed()
        expect(img).to_have_js_property("complete", True)
        assert img.evaluate("i => i.naturalWidth") > 100
    assert page.locator(".plots img").count() == 2
    assert page.locator("svg.hist").count() == 4
    commands = page.locator("pre.cmd").all_inner_texts()
    assert any("/v2/models/iris/infer" in c for c in commands)
    assert any("sepal_length=" in c for c in commands)
    # The lecture's curl really answers.
    lecture = next(c for c in commands if "sepal_length=" in c)
    query = re.search(r"'(http[^']+)'", lecture)
    assert query is not None
    assert httpx.get(query.group(1)).json()["prediction"] in {"0", "1", "2"}
    _shot(page, "card")


def test_try_it_predicts_class_2_for_the_lecture_flower(page: Page, server: str) -> None:
    _predict_flower(page, server)
    rows = page.locator("#proba tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(2)).to_contain_text("2")
    _shot(page, "try-prediction")


def test_try_it_shows_the_error_next_to_the_empty_field(page: Page, server: str) -> None:
    page.goto(f"{server}/ui/models/iris/try")
    for name, value in FLOWER.items():
        if name != "sepal_width":
            page.fill(f"input[name={name}]", value)
    page.click("button[type=submit]")
    field = page.locator(".field[data-feature=sepal_width]")
    expect(field.locator(".error")).to_be_visible()
    expect(field.locator(".error")).to_contain_text("sepal_width")
    expect(field.locator("input")).to_have_attribute("aria-invalid", "true")
    expect(field.locator("input")).to_be_focused()
    for other in ("sepal_length", "petal_length", "petal_width"):
        expect(page.locator(f".field[data-feature={other}] .error")).to_be_hidden()
    expect(page.locator("#result")).to_be_hidden()
    _shot(page, "try-error")


def test_live_page_shows_the_request_just_made(page: Page, server: str) -> None:
    _predict_flower(page, server)
    page.goto(f"{server}/ui/models/iris/live")
    expect(page.locator("#predictions")).not_to_have_text("0")
    expect(page.locator('#class-table tr[data-class="2"] .live-count')).not_to_have_text("0")
    expect(page.locator("#requests")).not_to_have_text("0")
    expect(page.locator("#p99")).not_to_have_text("—")
    # Traffic while the page watches: the next polls show a rate and draw it.
    for _ in range(20):
        assert httpx.get(f"{server}/models/iris", params=FLOWER).status_code == 200
    expect(page.locator("#rate")).not_to_have_text(re.compile(r"^(—|0\.00)$"), timeout=15_000)
    expect(page.locator("#chart polyline.rate")).to_have_attribute(
        "points", re.compile(r"\S+ \S+"), timeout=15_000
    )
    expect(page.locator("#refresh")).to_contain_text("Updated")
    _shot(page, "live")
