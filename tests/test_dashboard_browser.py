"""The HTML dashboard as a person uses it: Debian's headless Chromium (driven by Playwright's Python API, never
`playwright install`) opens the generated file from disk with every non-file request blocked."""
import json, os, re, shutil
from pathlib import Path

import pytest

from sae_nb.dashboard import display_token, generate_dashboard, synthetic_feature_data, token_color, validate_feature_data

CHROMIUM = os.environ.get("SAE_NB_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
N = 600           # features: several lazily parsed chunks of CHUNK
CHUNK = 64
SPECIAL = 217     # a feature with awkward tokens and known activations
TARGET = 5

if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
    pytest.skip(f"Debian's chromium is not installed at {CHROMIUM} (tools/test.sh installs it: apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python) is not installed: pip install -e '.[dev]'")

AWKWARD = ["<script>alert('x')</script>", "&amp;", '"q"', "\n", " ", "  ", "\t", " zebra", "é", "</script>", "\n\n  ", "\x00", ""]
ACTS = [0.0, 0.5, 0.0, 1.25, 0.0, 0.0, 0.0, 7.5, 0.0, 2.0, -3.0, 0.0, 0.1]


def _data() -> dict:
    data = synthetic_feature_data(N, seed=7)
    f = data["features"][SPECIAL]
    f.update(frequency=0.01, count=10_000, mean_activation=2.0, max_activation=7.5,
             top_tokens=[[" zebra", 50], ["&amp;", 3]], neighbors={"decoder": [[TARGET, 0.9], [N + 5, 0.5]], "cooccurrence": [[3, 0.2]]},
             examples=[{"tokens": AWKWARD, "activations": ACTS, "target": 7, "text_idx": 1, "position": 42, "max_activation": 7.5}])
    for f in data["features"]:   # " zebra" only in SPECIAL, so a search for it has exactly one hit
        for ex in f.get("examples", []) if f["index"] != SPECIAL else []:
            ex["tokens"] = [t.replace("zebra", "zebu") for t in ex["tokens"]]
        f["top_tokens"] = [[t.replace("zebra", "zebu"), c] for t, c in f.get("top_tokens", [])] if f["index"] != SPECIAL else f["top_tokens"]
    return data


@pytest.fixture(scope="module")
def page_file(tmp_path_factory):
    return generate_dashboard(_data(), tmp_path_factory.mktemp("dash") / "dashboard.html", chunk_size=CHUNK)


@pytest.fixture(scope="module")
def browser_ctx(tmp_path_factory):
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM,
                                                   headless=True, args=ARGS, viewport={"width": 1400, "height": 900})
        ctx.blocked = []
        def route(r):
            if r.request.url.startswith("file:"): r.continue_()
            else: ctx.blocked.append(r.request.url); r.abort()
        ctx.route("**/*", route)
        yield ctx
        ctx.close()


class Page:
    "A page on the dashboard, recording console errors, page errors, dialogs and requests."
    def __init__(self, ctx, url):
        self.p = ctx.new_page()
        self.errors, self.requests, self.dialogs = [], [], []
        self.p.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.p.on("pageerror", lambda e: self.errors.append(str(e)))
        self.p.on("request", lambda r: self.requests.append(r.url))
        self.p.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.p.goto(url)
        self.p.wait_for_selector("body[data-ready='1']", timeout=60_000)

    def js(self, expr, arg=None): return self.p.evaluate(expr, arg)
    def shown(self) -> int: return int(self.p.get_attribute("#sae-feature-view", "data-feature"))
    def rows(self) -> list: return [int(x) for x in self.js("[...document.querySelectorAll('.sae-item')].map(e => e.dataset.feature)")]
    def count(self) -> str: return self.p.inner_text("#sae-count")

    def wait(self, cond, timeout=10.0):
        "Poll `cond()` (the page's CSP forbids eval, so no wait_for_function)."
        import time
        t = time.time()
        while not cond():
            if time.time() - t > timeout: raise AssertionError("timed out waiting for the page")
            self.p.wait_for_timeout(50)

    def close(self):
        self.p.close()


@pytest.fixture
def page(browser_ctx, page_file):
    pg = Page(browser_ctx, page_file.as_uri())
    yield pg
    assert pg.errors == [], f"console errors: {pg.errors}"
    assert pg.dialogs == [], f"a token ran as code: {pg.dialogs}"
    assert [u for u in pg.requests if not u.startswith("file:")] == [], "the page tried to reach the network"
    pg.close()


def test_opens_offline_without_errors(page, browser_ctx):
    assert page.count() == f"showing {N} of {N} features"
    assert len(page.rows()) < 80, "the list must be virtualised: only the rows in sight are in the DOM"
    assert page.shown() == 0
    assert browser_ctx.blocked == []
    assert page.js("document.querySelectorAll('script:not([type])').length") == 1


def test_search_filters_the_list(page):
    page.p.fill("#sae-q", "zebra")
    page.wait(lambda: page.count().startswith("showing 1 of"))
    assert page.rows() == [SPECIAL]
    page.p.fill("#sae-q", f"#{TARGET}")
    page.wait(lambda: page.rows() == [TARGET])
    page.p.fill("#sae-q", "")
    page.wait(lambda: page.count() == f"showing {N} of {N} features")


def test_filters_and_sort(page):
    dead = {f["index"] for f in validate_feature_data(_data())["features"] if f["frequency"] == 0}
    page.p.select_option("#sae-kind", "dead")
    page.wait(lambda: page.count() == f"showing {len(dead)} of {N} features")
    assert set(page.rows()) <= dead
    page.p.select_option("#sae-kind", "all")
    page.p.check("#sae-full")
    full = [f["index"] for f in validate_feature_data(_data())["features"] if len(f["examples"]) >= 10]
    page.wait(lambda: page.count() == f"showing {len(full)} of {N} features")
    page.p.uncheck("#sae-full")
    page.p.fill("#sae-fmin", "0.5"); page.p.fill("#sae-fmax", "1.5"); page.p.press("#sae-fmax", "Enter")
    in_range = [f["index"] for f in _data()["features"] if 0.5 <= f["frequency"] * 100 <= 1.5]
    page.wait(lambda: page.count() == f"showing {len(in_range)} of {N} features")
    assert set(page.rows()) <= set(in_range) and SPECIAL in in_range
    page.p.fill("#sae-fmin", ""); page.p.fill("#sae-fmax", ""); page.p.press("#sae-fmax", "Enter")
    page.p.select_option("#sae-sort", "max")
    mx = {f["index"]: f["max_activation"] or 0 for f in _data()["features"]}
    page.wait(lambda: page.rows()[0] == max(mx, key=lambda i: (mx[i], -i)))


def test_click_shows_coloured_examples_with_activation_on_hover(page):
    page.p.fill("#sae-q", "zebra")
    page.wait(lambda: page.rows() == [SPECIAL])
    page.p.click(f".sae-item[data-feature='{SPECIAL}']")
    page.wait(lambda: page.shown() == SPECIAL)
    toks = page.p.locator("#sae-feature-view .sae-t")
    assert toks.count() == len(AWKWARD)
    texts = page.js("[...document.querySelectorAll('#sae-feature-view .sae-t')].map(e => e.textContent)")
    assert texts == ["<script>alert('x')</script>", "&amp;", '"q"', "↵", "␣", "␣␣", "⇥", " zebra", "é", "</script>", "↵↵␣␣", "\\x00", "∅"]
    assert texts == [display_token(t) for t in AWKWARD]   # the page and the Python renderer show tokens alike
    bg = page.js("[...document.querySelectorAll('#sae-feature-view .sae-t')].map(e => getComputedStyle(e).backgroundColor)")
    assert bg[7] != bg[0], "a high activation and a zero activation must look different"
    rgba = lambda s: tuple(float(x) for x in re.findall(r"[\d.]+", s)) + ((1.0,) if s.startswith("rgb(") else ())
    for k, a in enumerate(ACTS):   # the page and the Python renderer (the explorer) agree on every colour
        want = token_color(a, 7.5)
        got, exp = rgba(bg[k]), (rgba(want) if want else (0, 0, 0, 0))
        assert got[:3] == exp[:3] and abs(got[3] - exp[3]) <= 1 / 255 + 1e-3, (k, bg[k], want)   # Chromium keeps alpha in 8 bits
    toks.nth(7).hover()
    assert toks.nth(7).get_attribute("title").startswith("activation 7.5\ntoken \" zebra\"")
    assert "sae-tgt" in toks.nth(7).get_attribute("class")
    assert toks.nth(3).get_attribute("title") == 'activation 1.25\ntoken "\\n"'
    ARTIFACTS.mkdir(exist_ok=True)
    page.p.screenshot(path=str(ARTIFACTS / "dashboard_feature.png"))


def test_neighbour_link_navigates_and_back_returns(page):
    page.p.goto(page.p.url.split("#")[0] + f"#feature-{SPECIAL}")
    page.wait(lambda: page.shown() == SPECIAL)
    links = page.p.locator("#sae-feature-view .sae-nb a")
    assert links.first.inner_text() == f"#{TARGET}"
    assert page.p.locator("#sae-feature-view .sae-nb .sae-missing").inner_text() == f"#{N + 5}"   # not in the file: no link
    links.first.click()
    page.wait(lambda: page.shown() == TARGET)
    assert page.p.url.endswith(f"#feature-{TARGET}")
    assert page.p.locator(f".sae-item.sae-active[data-feature='{TARGET}']").count() == 1
    page.p.go_back()
    page.wait(lambda: page.shown() == SPECIAL)
    page.p.keyboard.press("ArrowDown")
    page.wait(lambda: page.shown() == SPECIAL + 1)


def test_full_page_screenshot(page):
    page.p.goto(page.p.url.split("#")[0] + f"#feature-{SPECIAL}")
    page.wait(lambda: page.shown() == SPECIAL)
    ARTIFACTS.mkdir(exist_ok=True)
    page.p.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=False)
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000


def test_a_broken_file_says_so_instead_of_loading_forever(browser_ctx, page_file, tmp_path):
    html = page_file.read_text()
    broken = tmp_path / "broken.html"
    broken.write_text(re.sub(r'<script type="application/json" id="sae-index">.*?</script>', "", html, flags=re.S))
    pg = browser_ctx.new_page()
    errors = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.goto(broken.as_uri())
    pg.wait_for_selector(".sae-error")
    assert "#sae-index is missing" in pg.inner_text(".sae-error")
    assert any("sae-index" in e for e in errors)
    pg.close()
