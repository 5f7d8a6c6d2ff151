"""The playground page (``GET /``) in a real browser: Playwright drives Debian's Chromium against the real server
(a subprocess) serving small real models; one action per tab, asserting on what the page shows. Any console
error or warning, or uncaught exception, fails the test. Screenshots of each tab go to tests/artifacts/screenshots/.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nlp_service.config import Settings

from .helpers import save_tiny_generator
from .test_e2e import run_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

GEN = "gen-long"
MAX_NEW = 1000  # a long generation: there is time to press Stop
SCREENSHOTS = Path(__file__).parent / "artifacts" / "screenshots"
CHROMIUM = next((p for p in (os.environ.get("NLP_TEST_CHROMIUM"), shutil.which("chromium"),
                             "/usr/bin/chromium", shutil.which("chromium-browser")) if p and Path(p).exists()), None)


@pytest.fixture(scope="module")
def page_models(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's small models (links) and a tiny GPT-2 with room for long generations."""
    folder = tmp_path_factory.mktemp("playground") / "models"
    folder.mkdir()
    for name, fixture in {"w2v-small": "w2v_model", "ft-lee": "ft_model", "rnn-small": "rnn_model",
                          "tr-small": "translator_model"}.items():
        (folder / name).symlink_to(request.getfixturevalue(fixture), target_is_directory=True)
    save_tiny_generator(folder, GEN, positions=1024, never_eos=True)
    return folder


@pytest.fixture(scope="module")
def server(page_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with run_server(page_models, tmp_path_factory.mktemp("playground-server"), {
            "NLP_DEFAULT_VECTORS_MODEL": "w2v-small", "NLP_DEFAULT_GENERATOR_MODEL": GEN,
            "NLP_GENERATION_MAX_INPUT_TOKENS": "40", "NLP_GENERATION_MAX_TOTAL_TOKENS": "1024"}) as http:
        yield http


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("no Chromium found (apt-get install chromium, or NLP_TEST_CHROMIUM=/path/to/chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    with sync_api.sync_playwright() as p:
        args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
        b = p.chromium.launch(executable_path=CHROMIUM, args=args)
        yield b
        b.close()


# Chromium logs every error answer of a fetch as this console error, whatever the page does with it.
FAILED_LOAD = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")


def watch(pg: Any) -> list[str]:
    """The console errors and warnings, and uncaught exceptions, of a page, as they come. ``pg.expected``: the
    HTTP statuses a test provokes on purpose (an API error the page must show), whose log lines are not problems."""
    problems: list[str] = []
    pg.expected = set()

    def console(m: Any) -> None:
        failed = FAILED_LOAD.search(m.text)
        if m.type in ("error", "warning") and not (failed and int(failed.group(1)) in pg.expected):
            problems.append(f"console {m.type}: {m.text}")

    pg.on("console", console)
    pg.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    pg.set_default_timeout(20_000)
    return problems


@pytest.fixture
def page(browser: Any, server: httpx.Client) -> Iterator[Any]:
    """A fresh page on the playground; fails the test on any console error or warning, or page error."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    pg = context.new_page()
    problems = watch(pg)
    pg.goto(str(server.base_url))
    pg.wait_for_function("document.querySelector('#vec-model').options.length > 0")
    yield pg
    context.close()
    assert problems == []


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def open_tab(page: Any, name: str) -> None:
    tab = page.get_by_role("tab", name=name)
    tab.click()
    page.wait_for_selector(f"#{tab.get_attribute('aria-controls')}:not([hidden])")


def test_page_is_public_and_not_in_the_api_schema(server: httpx.Client) -> None:
    r = server.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/playground.js">' in r.text
    assert "javascript" in server.get("/static/api.js").headers["content-type"]
    assert "get" not in server.get("/openapi.json").json()["paths"]["/"]


def test_vectors_neighbours_map_and_walk(page: Any) -> None:
    page.select_option("#vec-model", "w2v-small")
    page.fill("#nb-word", "rey")
    page.click("#neighbors-form button[type=submit]")
    rows = page.locator("#nb-table tbody tr")
    rows.first.wait_for()
    assert rows.count() == 12
    points = page.locator("#nb-map svg g.point")
    points.first.wait_for()
    assert points.count() == 13  # the word and its neighbours
    assert page.locator("#nb-map svg g.point.query").get_attribute("data-word") == "rey"
    # The map's points are where the table's words are; a click walks to that word.
    target = points.nth(3).get_attribute("data-word")
    points.nth(3).click()
    page.wait_for_function("w => document.querySelector('#nb-map g.point.query')?.dataset.word === w", arg=target)
    assert page.input_value("#nb-word") == target
    assert target in page.inner_text("#nb-table caption")
    # The keyboard walks too: a point is a button (Tab to it, Enter).
    other = points.nth(2).get_attribute("data-word")
    points.nth(2).focus()
    page.keyboard.press("Enter")
    page.wait_for_function("w => document.querySelector('#nb-map g.point.query')?.dataset.word === w", arg=other)
    # The approximate index answers too.
    page.check("#nb-approx")
    page.click("#neighbors-form button[type=submit]")
    page.wait_for_function("document.querySelector('#nb-table caption').textContent.includes('approximate')")
    # Analogy and similarity.
    page.click("#analogy-form button[type=submit]")
    page.locator("#an-answers li").first.wait_for()
    page.click("#similarity-form button[type=submit]")
    page.wait_for_function("document.querySelector('#sim-out').textContent.startsWith('cos(padre, madre)')")
    shot(page, "vectors")


def test_vectors_subwords_and_api_errors(page: Any) -> None:
    page.select_option("#vec-model", "ft-lee")
    page.fill("#nb-word", "qwertyzz")  # not in the vocabulary: built from its character n-grams
    page.click("#neighbors-form button[type=submit]")
    page.locator("#nb-map svg g.point.query.subword").wait_for()
    assert page.is_visible("#nb-map .subword-key")
    # An unknown word in a model without subwords: the API's message, not a blank panel.
    page.expected.add(404)
    page.select_option("#vec-model", "w2v-small")
    page.fill("#sim-1", "qqqzx")
    page.click("#similarity-form button[type=submit]")
    error = page.locator("#similarity-form .error")
    error.wait_for()
    assert "qqqzx" in error.inner_text()


def test_classify_with_explanation(page: Any, server: httpx.Client) -> None:
    open_tab(page, "Classify")
    assert page.input_value("#cls-model") == "rnn-small"
    page.click("#classify-form button[type=submit]")
    # Whichever the server supports: explanations (highlighted spans), or the API's refusal of `explain`.
    page.wait_for_selector("#cls-results .cls-result, #classify-form .error:not([hidden])")
    probe = server.post("/v1/sentiment", json={"model": "rnn-small", "texts": ["buena"], "explain": True})
    if probe.status_code == 200:
        cards = page.locator("#cls-results .cls-result")
        assert cards.count() == 2
        assert page.locator("#cls-results mark").count() > 0
        assert page.is_visible("#cls-legend")
        assert cards.first.locator(".bars dt").count() == 2
        assert cards.first.locator(".label strong").inner_text() in ("pos", "neg")
    else:
        assert probe.status_code == 422
        page.expected.add(422)
        assert page.inner_text("#classify-form .error") == probe.json()["error"]["message"]
        page.uncheck("#cls-explain")
        page.click("#classify-form button[type=submit]")
        page.locator("#cls-results .cls-result").first.wait_for()
        assert page.locator("#cls-results .cls-result").count() == 2
    shot(page, "classify")


def test_translate_with_attention(page: Any, server: httpx.Client) -> None:
    open_tab(page, "Translate")
    page.click("#translate-form button[type=submit]")
    page.wait_for_selector("#tr-table:not([hidden]), #translate-form .error:not([hidden])")
    probe = server.post("/v1/translate", json={"model": "tr-small", "texts": ["hola"], "return_attention": True})
    if probe.status_code == 200:
        assert page.locator("#tr-table tbody tr").count() == 2
        maps = page.locator("#tr-attention-maps .heat")
        assert maps.count() == 2
        att = probe.json()["attention"][0]
        assert len(att["weights"]) == len(att["target_tokens"])
        assert maps.first.locator(".cell").count() > 0
    else:
        assert probe.status_code == 422
        page.expected.add(422)
        assert page.inner_text("#translate-form .error") == probe.json()["error"]["message"]
        page.uncheck("#tr-attention")
        page.click("#translate-form button[type=submit]")
        page.locator("#tr-table tbody tr").first.wait_for()
        assert page.locator("#tr-table tbody tr").count() == 2
    shot(page, "translate")


def engine(server: httpx.Client) -> dict[str, int]:
    return server.get(f"/v1/models/{GEN}").json()["engine"]


def test_generate_streams_and_stops(page: Any, server: httpx.Client) -> None:
    open_tab(page, "Generate")
    # A short one first: the text grows, then the finish reason and the count.
    page.fill("#gen-max", "12")
    page.fill("#gen-seed", "7")
    page.click("#gen-go")
    page.wait_for_function("document.querySelector('#gen-status').dataset.state === 'done'")
    assert page.inner_text("#gen-status").startswith("done: 12 tokens, finish reason length")
    short = page.inner_text("#gen-output .text")
    assert short
    # A long one, stopped: the text grew as it streamed, the page says stopped, the server stopped too.
    before = engine(server)["tokens"]
    page.fill("#gen-max", str(MAX_NEW))
    page.click("#gen-go")
    page.wait_for_function("document.querySelector('#gen-output .text').textContent.length > 0")
    first = len(page.inner_text("#gen-output .text"))
    page.wait_for_function("n => document.querySelector('#gen-output .text').textContent.length > n", arg=first)
    page.click("#gen-stop-button")
    page.wait_for_function("document.querySelector('#gen-status').dataset.state === 'stopped'")
    assert page.inner_text("#gen-status").startswith("stopped after")
    assert page.is_disabled("#gen-stop-button")
    # The engine stops generating for it: its token count settles far before the MAX_NEW asked for.
    last, deadline = engine(server)["tokens"], time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = engine(server)["tokens"]
        if now == last:
            break
        last = now
    assert last - before < MAX_NEW, (before, last)
    shot(page, "generate")
    # And the next generation works.
    page.fill("#gen-max", "5")
    page.click("#gen-go")
    page.wait_for_function("document.querySelector('#gen-status').dataset.state === 'done'")
    assert page.inner_text("#gen-status").startswith("done: 5 tokens")


def test_training_curves(page: Any, server: httpx.Client) -> None:
    open_tab(page, "Training curves")
    page.select_option("#cur-model", "rnn-small")
    page.click("#curves-form button[type=submit]")
    page.wait_for_selector("#cur-img:not([hidden]), #cur-none:not([hidden]), #curves-form .error:not([hidden])")
    status = server.get("/v1/models/rnn-small/curves").status_code
    if status == 200:
        page.wait_for_function("document.querySelector('#cur-img').naturalWidth > 0")
    else:
        assert status == 404 and page.is_visible("#cur-none")
        page.expected.add(404)
    shot(page, "curves")


def test_keyboard_tabs(page: Any) -> None:
    page.get_by_role("tab", name="Vectors").focus()
    page.keyboard.press("ArrowRight")
    assert page.get_by_role("tab", name="Classify").get_attribute("aria-selected") == "true"
    assert page.is_visible("#panel-classify") and not page.is_visible("#panel-vectors")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert page.get_by_role("tab", name="Training curves").get_attribute("aria-selected") == "true"


# ---- API keys: the page loads without one, asks for it on a 401, then works ------------------------------


@pytest.fixture(scope="module")
def keyed_server(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    models = tmp_path_factory.mktemp("playground-keyed") / "models"
    models.mkdir()
    (models / "w2v-small").symlink_to(settings.models_dir / "w2v-small", target_is_directory=True)
    with run_server(models, models.parent / "work", {"NLP_API_KEYS": "sesame"}) as http:
        yield http


def test_api_key_is_asked_for(browser: Any, keyed_server: httpx.Client) -> None:
    assert keyed_server.get("/").status_code == 200
    assert keyed_server.get("/static/playground.js").status_code == 200
    assert keyed_server.get("/v1/models").status_code == 401
    assert keyed_server.post("/", json={"inputs": "x"}).status_code == 401  # TGI's root route keeps its key
    context = browser.new_context(viewport={"width": 1200, "height": 700})
    pg = context.new_page()
    problems = watch(pg)
    pg.expected.add(401)
    pg.goto(str(keyed_server.base_url))
    pg.wait_for_selector("#keybar:not([hidden])")
    assert "API key" in pg.inner_text("#global-error")
    shot(pg, "api-key")
    pg.fill("#api-key", "sesame")
    pg.click("#keybar button")
    pg.wait_for_function("document.querySelector('#vec-model').options.length > 0")
    assert pg.is_hidden("#global-error")
    assert pg.evaluate("sessionStorage.getItem('nlp-service-api-key')") == "sesame"
    pg.click("#similarity-form button[type=submit]")
    pg.wait_for_function("document.querySelector('#sim-out').textContent.startsWith('cos(')")
    # The other kinds: none loaded, each tab says so.
    pg.get_by_role("tab", name="Generate").click()
    assert "nlp-service train gpt2" in pg.inner_text("#panel-generate .empty")
    assert pg.is_hidden("#generate-form")
    shot(pg, "no-model")
    context.close()
    assert problems == []
