"""`sessions report`: one offline HTML page whose numbers are list --json's and timeline's.

The page is checked twice: as text (what it embeds, what it refers to, how it escapes), and in
a real headless Chromium (Debian's), driven by Playwright: its table, sorting, search, filters
and pages, no console errors and no request but the file itself. CI installs Chromium; without
it the browser tests skip, unless SESSIONS_REQUIRE_BROWSER=1 (set by .ci/run) makes that a
failure.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import GENERATED, REAL, SESSIONS, run, run_json
from tests.otlp_builder import document, lines, span

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# The screenshot the README shows; a test run writes it afresh under this name in its tmp dir.
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "report.png"


def _report(tmp_path: Path, *args: str) -> str:
    out = tmp_path / "report.html"
    result = run("report", *args, "-o", str(out))
    assert result.exit_code == 0, result.stderr
    assert f"wrote {out}" in result.stderr
    return out.read_text(encoding="utf-8")


def _embedded(page: str, element: str) -> list:
    """The JSON blocks of a kind the page carries, parsed."""
    pattern = {
        "table": r'<script type="application/json" id="session-data">(.*?)</script>',
        "events": r'<script type="application/json" class="events">(.*?)</script>',
    }[element]
    return [json.loads(text) for text in re.findall(pattern, page, re.S)]


# ---------------------------------------------------------------------------------------------
# The page as text


def test_the_table_carries_list_json_values_for_every_session(tmp_path):
    page = _report(tmp_path, str(GENERATED))
    (table,) = _embedded(page, "table")
    listed = run_json("list", str(GENERATED), "--sort", "cost")
    assert [row[0] for row in table["rows"]] == [s["session_id"] for s in listed]
    for values, expected in zip(table["rows"], listed, strict=True):
        row = dict(zip(table["fields"], values, strict=True))
        assert row == {field: expected[field] for field in table["fields"]}


def test_headline_figures_are_the_stats_totals(tmp_path):
    page = _report(tmp_path, str(GENERATED))
    totals = run_json("stats", str(GENERATED))["totals"]
    figures = dict(re.findall(
        r'<div class="label">(.*?)</div><div class="value">(.*?)</div>', page))  # fmt: skip
    assert figures["Sessions"] == f"{totals['sessions']:,}"
    assert figures["Traces"] == f"{totals['traces']:,}"
    assert figures["Tokens"] == f"{totals['total_tokens']:,}"
    assert figures["Cost"] == f"${totals['cost_usd']:,.2f}"
    rate = totals["sessions_with_errors"] / totals["sessions"]
    assert figures["Error rate"] == f"{rate:.1%}"


def test_the_most_expensive_sessions_get_sections_with_timeline_json(tmp_path):
    page = _report(tmp_path, str(GENERATED), "--sessions", "3")
    top = run_json("list", str(GENERATED), "--sort", "cost", "--limit", "3")
    shown = re.findall(r'<article class="session" id="session-\d+" data-session-id="(.*?)">', page)
    assert shown == [s["session_id"] for s in top]
    for session_id, events in zip(shown, _embedded(page, "events"), strict=True):
        assert events == run_json("timeline", session_id, str(GENERATED), "--spans")


def test_the_page_fetches_nothing_and_allows_only_its_own_script_and_style(tmp_path):
    page = _report(tmp_path, str(REAL))
    policy = html.unescape(re.search(r'http-equiv="Content-Security-Policy" content="(.*?)"',
                                     page).group(1))  # fmt: skip
    assert policy.startswith("default-src 'none'; script-src 'sha256-")
    assert "unsafe" not in policy
    # Every reference in the page stays inside it: anchors, and no src at all.
    assert re.findall(r'\ssrc="', page) == []
    assert all(ref.startswith("#") for ref in re.findall(r'\shref="(.*?)"', page))
    assert len(re.findall(r"<svg\b", page)) >= 5  # the five charts, and timelines


HOSTILE = [
    "</script><script>document.title='owned'</script>",
    '<img src=x onerror="document.title=1">',
    "\u202eevil\u200b <b>bold</b> & 'quotes'",
]


def _hostile_export(tmp_path: Path) -> Path:
    spans = []
    for i, text in enumerate(HOSTILE):
        spans.append(span(f"t{i}", f"r{i}", name=text, start_ms=i * 1000, end_ms=i * 1000 + 5,
                          error=i == 1, session__id=text, user__id=text, tags=[text],
                          gen_ai__request__model=text, gen_ai__usage__input_tokens=3))  # fmt: skip
    path = tmp_path / "hostile.jsonl"
    path.write_text(lines(document(*spans)))
    return path


def test_hostile_text_is_escaped_wherever_it_lands(tmp_path):
    page = _report(tmp_path, str(_hostile_export(tmp_path)))
    for text in HOSTILE:
        assert text not in page
    # One script element and the JSON blocks: nothing in the data opened another.
    assert len(re.findall(r"<script\b", page)) == 2 + len(HOSTILE)
    assert "<img" not in page
    assert "<b>" not in page
    (table,) = _embedded(page, "table")
    assert sorted(row[0] for row in table["rows"]) == sorted(HOSTILE)


def test_filters_apply_and_an_empty_match_still_writes_a_page(tmp_path):
    page = _report(tmp_path, str(REAL), "--user", "nobody-at-all")
    (table,) = _embedded(page, "table")
    assert table["rows"] == []
    assert "<svg" not in page


def test_it_writes_stdout_with_dash_and_refuses_an_unwritable_path(tmp_path):
    result = subprocess.run([SESSIONS, "report", str(REAL), "-o", "-"], capture_output=True,
                            check=False)  # fmt: skip
    assert result.returncode == 0
    assert result.stdout.startswith(b"<!DOCTYPE html>")
    result = run("report", str(REAL), "-o", str(tmp_path / "no" / "such" / "r.html"))
    assert result.exit_code == 1
    assert "cannot write" in result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------------------------------
# The page in a real browser

needs_browser = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("SESSIONS_REQUIRE_BROWSER"),
    reason="no chromium on this machine (apt-get install chromium; .ci/run does)",
)


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    assert CHROMIUM, "SESSIONS_REQUIRE_BROWSER is set but there is no chromium"
    with playwright.sync_playwright() as driver:
        # As root, as CI runs, Chromium needs --no-sandbox; the rest keep it off the network.
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])  # fmt: skip
        yield launched
        launched.close()


class Opened:
    """A page loaded from a file, with what it logged and asked for."""

    def __init__(self, browser, path: Path):
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.problems: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: m.type in ("error", "warning")
                     and self.problems.append(f"{m.type}: {m.text}"))  # fmt: skip
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.as_uri())

    def column(self, field: str) -> list:
        cells = self.page.locator(f'#session-table tbody td[data-field="{field}"]')
        return [json.loads(v) for v in cells.evaluate_all("cs => cs.map(c => c.dataset.value)")]

    def select(self, control: str, value: str) -> None:
        self.page.select_option(control, value)


@needs_browser
def test_in_chromium_the_table_is_list_json_and_nothing_is_fetched(browser, tmp_path):
    path = tmp_path / "report.html"
    title = "Sessions: fixtures/generated.otlp.jsonl.gz"
    path.write_text(_report(tmp_path, str(GENERATED), "--title", title))
    opened = Opened(browser, path)
    assert opened.page.title() == title
    listed = run_json("list", str(GENERATED), "--sort", "cost")
    assert opened.page.locator("#session-table tbody tr").count() == min(len(listed), 100)
    opened.select("#page-size", "all")
    assert opened.column("session_id") == [s["session_id"] for s in listed]
    for field in ("cost_usd", "total_tokens", "duration_ms", "trace_count", "error_count"):
        assert opened.column(field) == [s[field] for s in listed], field
    assert opened.page.locator("#charts figure.chart svg").count() == 5
    assert opened.page.locator("article.session svg").count() == 10
    # The README's screenshot: the top of the page, as a user first sees it.
    opened.page.screenshot(path=str(tmp_path / SCREENSHOT.name))
    if os.environ.get("SESSIONS_UPDATE_SCREENSHOT"):
        opened.page.screenshot(path=str(SCREENSHOT))
    assert opened.problems == []
    assert opened.requests == [path.as_uri()]


@needs_browser
def test_in_chromium_sorting_search_and_filters_match_the_cli(browser, tmp_path):
    path = tmp_path / "report.html"
    path.write_text(_report(tmp_path, str(GENERATED)))
    opened = Opened(browser, path)
    opened.select("#page-size", "all")
    header = opened.page.locator('#session-table th[data-field="total_tokens"]')
    header.click()
    ids = [s["session_id"] for s in run_json("list", str(GENERATED), "--sort", "tokens")]
    assert opened.column("session_id") == ids
    assert header.get_attribute("aria-sort") == "descending"
    header.click()
    ascending = run_json("list", str(GENERATED), "--sort", "tokens", "--asc")
    assert opened.column("session_id") == [s["session_id"] for s in ascending]
    # A user, a search, and the sessions with errors: the sets the same filters give the CLI.
    user = run_json("list", str(GENERATED))[0]["user_id"]
    opened.select("#filter-user", user)
    assert set(opened.column("session_id")) == _ids("--user", user)
    opened.select("#filter-user", "")
    opened.page.fill("#search", "digest")
    assert set(opened.column("session_id")) == _ids("--search", "digest")
    opened.page.fill("#search", "")
    opened.select("#filter-errors", "with")
    assert set(opened.column("session_id")) == _ids("--errors")
    assert opened.problems == []


def _ids(*filters: str) -> set[str]:
    return {s["session_id"] for s in run_json("list", str(GENERATED), *filters)}


@needs_browser
def test_in_chromium_hostile_text_shows_as_text_and_runs_nothing(browser, tmp_path):
    path = tmp_path / "report.html"
    path.write_text(_report(tmp_path, str(_hostile_export(tmp_path))))
    opened = Opened(browser, path)
    assert opened.page.title().startswith("Sessions: ")
    names = opened.page.locator('#session-table td[data-field="session_id"]').all_text_contents()
    assert "</script><script>document.title='owned'</script>" in names
    assert opened.page.locator("#session-table img, #session-table b").count() == 0
    assert opened.problems == []


@needs_browser
def test_in_chromium_thirty_thousand_sessions_page_through(browser, tmp_path):
    count = 31_000
    spans = [span(f"t{i}", f"s{i}", start_ms=i, end_ms=i + 5, session__id=f"sess-{i:05d}",
                  gen_ai__usage__input_tokens=i % 97) for i in range(count)]  # fmt: skip
    export = tmp_path / "many.jsonl"
    export.write_text(lines(document(*spans)))
    path = tmp_path / "report.html"
    path.write_text(_report(tmp_path, str(export), "--sessions", "2"))
    opened = Opened(browser, path)
    assert opened.page.locator("#session-table tbody tr").count() == 100
    assert "of 31,000" in opened.page.locator("#shown").text_content()
    opened.page.click("#next")
    assert opened.page.locator("#page").text_content() == "page 2 of 310"
    opened.page.fill("#search", "sess-3099")
    assert sorted(opened.column("session_id")) == [f"sess-3099{d}" for d in range(10)]
    assert opened.problems == []
