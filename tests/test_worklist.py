"""The officer's worklist page: escaping, ranking, languages, offline, and filters in a real browser.

The browser tests start Debian's chromium headless on the written file (``--dump-dom`` prints
the DOM after the page's script ran). They are skipped where chromium is not installed,
except under CI (``CI=true``), where a missing browser is a failure: ``.ci/run`` installs it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest

from sisam.worklist import (
    LANGUAGES,
    ReasoningRow,
    WorklistEntry,
    WorklistError,
    entries_from_explanations,
    rank,
    render_worklist,
    write_worklist,
)

EVIL = '<script>alert(1)</script> & "quotes"'
PAGE = {"title": "Worklist 2024-05-02", "generated_at": "2024-05-02 07:30", "source": "scores.parquet"}


def _error(id_: str, p: float, name: str | None = None, pattern: str = "importer=I1 · hs_code=84713012") -> WorklistError:
    return WorklistError(
        id=id_,
        name=name or id_.replace("_", " ").capitalize(),
        probability=p,
        sentences=(f"{round(100 * p)} % because importer I1 was caught with this error 7 times in 12.",),
        reasoning=(
            ReasoningRow(pattern, n=12, k=7, prior=0.2, posterior=0.55, contribution=1.4),
            ReasoningRow("hs_code=84713012", n=1210.0, k=64.5, prior=0.03, posterior=0.05, contribution=-0.2),
        ),
    )


def _entry(decl: str, p_any: float, office: str = "0817600", errors: tuple[WorklistError, ...] = (),
           value: float | None = None, item_no: int = 1) -> WorklistEntry:
    return WorklistEntry(decl, item_no, office, p_any, errors, expected_value=value)


class _Dom(HTMLParser):
    """The parts of a worklist page the tests assert on, from rendered or browser-dumped HTML."""

    def __init__(self, html: str):
        super().__init__()
        self.html_attrs: dict[str, str | None] = {}
        self.items: list[dict] = []  # declaration, office, hidden, matched error ids
        self.scripts: list[tuple[dict, str]] = []
        self.csp = ""
        self.patterns: list[str] = []
        self.no_match_hidden: bool | None = None
        self.status = ""
        self._capture: str | None = None
        self._text: list[str] = []
        self._script_attrs: dict = {}
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "html":
            self.html_attrs = a
        elif tag == "meta" and a.get("http-equiv") == "Content-Security-Policy":
            self.csp = a["content"] or ""
        elif tag == "li" and "item" in classes:
            self.items.append({"declaration": a["data-declaration"], "office": a["data-office"],
                               "hidden": "hidden" in a, "matched": []})
        elif tag == "li" and "error" in classes and "match" in classes:
            self.items[-1]["matched"].append(a["data-error"])
        elif tag == "p" and a.get("id") == "no-match":
            self.no_match_hidden = "hidden" in a
        elif tag == "script":
            self._capture, self._script_attrs, self._text = "script", a, []
        elif tag == "td" and "pattern" in classes:
            self._capture, self._text = "pattern", []
        elif tag == "p" and a.get("id") == "status":
            self._capture, self._text = "status", []

    def handle_endtag(self, tag):
        if self._capture == "script" and tag == "script":
            self.scripts.append((self._script_attrs, "".join(self._text)))
        elif self._capture == "pattern" and tag == "td":
            self.patterns.append("".join(self._text))
        elif self._capture == "status" and tag == "p":
            self.status = "".join(self._text)
        else:
            return
        self._capture = None

    def handle_data(self, data):
        if self._capture:
            self._text.append(data)


# ----------------------------------------------------------------------------------------
# Rendering, no browser.

def test_every_special_character_is_escaped():
    evil_error = _error("hs_code", 0.8, name=EVIL, pattern=EVIL)
    entry = WorklistEntry(EVIL, 1, EVIL, 0.9, (evil_error,))
    page = render_worklist([entry], title=EVIL, generated_at=EVIL, source=EVIL)

    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;quotes&#34;" in page
    dom = _Dom(page)
    # Only the page's own two script elements: the JSON data and the filter code.
    assert [attrs.get("type") for attrs, _ in dom.scripts] == ["application/json", None]
    # The parser decodes the entities back to the very text the trader wrote.
    assert dom.patterns[0] == EVIL
    assert dom.items[0]["declaration"] == EVIL and dom.items[0]["office"] == EVIL
    # Data for the script is JSON that cannot close its element and reads back intact.
    data_text = dom.scripts[0][1]
    assert "<" not in data_text and ">" not in data_text and "&" not in data_text
    assert json.loads(data_text)["errorNames"] == {"hs_code": EVIL}


def test_content_security_policy_names_exactly_the_inline_script():
    dom = _Dom(render_worklist([_entry("D1", 0.5, errors=(_error("hs_code", 0.4),))], **PAGE))
    code = dom.scripts[1][1]
    digest = base64.b64encode(hashlib.sha256(code.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in dom.csp
    assert "default-src 'none'" in dom.csp


def test_ranked_by_expected_value_where_known_then_by_probability():
    entries = [
        _entry("low", 0.10),
        _entry("valued-small", 0.95, value=300.0),
        _entry("high", 0.90),
        _entry("valued-big", 0.20, value=600.0),
        _entry("tie-b", 0.50, item_no=2),
        _entry("tie-b", 0.50, item_no=1),
        _entry("tie-a", 0.50),
    ]
    expected = ["valued-big", "valued-small", "high", "tie-a", "tie-b", "tie-b", "low"]
    assert [e.declaration_id for e in rank(entries)] == expected
    assert [(e.declaration_id, e.item_no) for e in rank(entries)][4:6] == [("tie-b", 1), ("tie-b", 2)]
    dom = _Dom(render_worklist(entries, **PAGE))
    assert [i["declaration"] for i in dom.items] == expected


def test_no_external_references():
    entries = [_entry("D1", 0.7, errors=(_error("hs_code", 0.6), _error("origin_country", 0.3)))]
    for lang in LANGUAGES:
        page = render_worklist(entries, lang=lang, **PAGE)
        assert not re.search(r"""(?:src|href|action)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//""", page, re.I)
        assert not re.search(r"""url\(|@import|<link\b|<iframe\b|<img\b""", page, re.I)
        assert "http://" not in page and "https://" not in page


@pytest.mark.parametrize(
    ("lang", "words", "value", "percent"),
    [
        ("en", ["Error type", "Customs office", "Full reasoning (2 patterns)", "Expected value"], "1,234.50", "82.0%"),
        ("pt-BR", ["Tipo de erro", "Unidade aduaneira", "Raciocínio completo (2 padrões)", "Valor esperado"], "1.234,50", "82,0%"),
    ],
)
def test_both_languages(lang, words, value, percent):
    entry = _entry("D1", 0.9, errors=(_error("hs_code", 0.82),), value=1234.5)
    page = render_worklist([entry], lang=lang, **PAGE)
    assert _Dom(page).html_attrs["lang"] == lang
    for word in [*words, value, percent]:
        assert word in page


def test_languages_match_the_error_catalog():
    from sisam.knowledge import LANGUAGES as CATALOG_LANGUAGES

    assert LANGUAGES == CATALOG_LANGUAGES
    with pytest.raises(ValueError, match="expected one of en, pt-BR; got 'fr'"):
        render_worklist([], lang="fr", **PAGE)


@pytest.mark.parametrize(("lang", "message"), [("en", "the worklist is empty"), ("pt-BR", "a lista de trabalho está vazia")])
def test_empty_worklist_says_so(lang, message):
    page = render_worklist([], lang=lang, **PAGE)
    assert message in page
    dom = _Dom(page)
    assert dom.items == [] and 'id="filters"' not in page


def test_small_probabilities_and_decayed_counts_read_plainly():
    row = ReasoningRow("origin=CN", n=50210.0, k=0.25, prior=0.0004, posterior=0.0000012, contribution=0.0)
    error = WorklistError("origin_country", "Wrong origin", 0.004, (), (row,))
    page = render_worklist([_entry("D1", 0.004, errors=(error,))], **PAGE)
    for text in ("50,210", "0.2", "0.04%", "0.00012%", "0.4%"):
        assert f">{text}<" in page


def test_write_worklist_replaces_atomically(tmp_path: Path):
    out = tmp_path / "reports" / "worklist.html"
    assert write_worklist([_entry("D1", 0.5)], out, lang="pt-BR", **PAGE) == out
    first = out.read_text(encoding="utf-8")
    assert "D1" in first and 'lang="pt-BR"' in first
    # A failing render leaves the previous page whole and no temporary file behind.
    with pytest.raises(ValueError):
        write_worklist([_entry("D2", 0.5)], out, lang="xx", **PAGE)
    assert out.read_text(encoding="utf-8") == first
    assert sorted(p.name for p in out.parent.iterdir()) == ["worklist.html"]
    assert out.stat().st_mode & 0o044  # readable by others, like any report (mkstemp gives 0600)


def test_entries_from_explanations_reads_by_name():
    row = SimpleNamespace(pattern=SimpleNamespace(description="importer=I1"), n=12, k=7, prior=0.2,
                          posterior=0.55, contribution=1.4)
    error = SimpleNamespace(id="hs_code", name="Wrong tariff code", probability=0.8,
                            sentences=["Because."], reasoning=[row])
    item = SimpleNamespace(declaration_id="D1", item_no=3, office="0817600", p_any=0.9, errors=[error])
    as_mapping = {"declaration_id": "D2", "item_no": "4", "office": "", "p_any": 0.2, "expected_value": 50,
                  "errors": [{"id": "origin_country", "name": "Wrong origin", "probability": 0.1,
                              "sentences": [], "reasoning": []}]}
    first, second = entries_from_explanations([item, as_mapping])
    assert first == WorklistEntry("D1", 3, "0817600", 0.9, (
        WorklistError("hs_code", "Wrong tariff code", 0.8, ("Because.",),
                      (ReasoningRow("importer=I1", 12.0, 7.0, 0.2, 0.55, 1.4),)),))
    assert second.item_no == 4 and second.expected_value == 50.0 and first.expected_value is None
    with pytest.raises(TypeError, match="has none of the fields errors, top_errors, top"):
        entries_from_explanations([SimpleNamespace(declaration_id="D", item_no=1, office="", p_any=0.1)])


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_probabilities_are_checked(bad):
    with pytest.raises(ValueError, match="must be a probability"):
        _entry("D1", bad)
    with pytest.raises(ValueError, match="must be a probability"):
        WorklistError("hs_code", "x", bad)


def test_docstring_examples():
    import doctest

    import sisam.worklist

    result = doctest.testmod(sisam.worklist)
    assert result.attempted > 0 and result.failed == 0


# ----------------------------------------------------------------------------------------
# In a real browser.

CHROMIUM = shutil.which("chromium")
OFFICE = "ALF/SP & Santos"  # a value that needs URL encoding and HTML escaping both


@pytest.fixture(scope="module")
def chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed, and CI=true: .ci/run must install it (apt-get install chromium)")
        pytest.skip("chromium is not installed here (apt-get install chromium); CI installs it and runs these tests")
    return CHROMIUM


@pytest.fixture(scope="module")
def page_url(tmp_path_factory) -> str:
    entries = [
        _entry("D-001", 0.90, OFFICE, (_error("hs_code", 0.8), _error("description", 0.4))),
        _entry("D-002", 0.80, "0717700", (_error("hs_code", 0.7),)),
        _entry("D-003", 0.70, OFFICE, (_error("origin_country", 0.6),)),
        _entry("D-004", 0.60, OFFICE, (_error("description", 0.5), _error("hs_code", 0.3))),
        _entry("X-005", 0.50, "", ()),
    ]
    out = write_worklist(entries, tmp_path_factory.mktemp("worklist") / "worklist.html", **PAGE)
    return out.as_uri()


def _browse(chromium: str, url: str, profile: Path) -> _Dom:
    """The DOM of ``url`` after its script ran, from a headless chromium with a fresh profile.

    The flags keep chromium off the network (this machine has none) and out of the way of
    a root user; ``--enable-logging=stderr`` makes it print the page's console, where a
    script error or a Content-Security-Policy violation would show.
    """
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--dump-dom", url],
        capture_output=True, text=True, timeout=120, check=True,
    )
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    return _Dom(done.stdout)


def _visible(dom: _Dom) -> list[str]:
    return [i["declaration"] for i in dom.items if not i["hidden"]]


def test_browser_shows_every_ranked_item(chromium, page_url, tmp_path):
    dom = _browse(chromium, page_url, tmp_path)
    assert dom.html_attrs.get("data-ready") == "true"  # the script ran to its end
    assert _visible(dom) == ["D-001", "D-002", "D-003", "D-004", "X-005"]
    assert dom.status == "Showing 5 of 5"
    assert dom.no_match_hidden is True


def test_browser_applies_filters_from_the_url(chromium, page_url, tmp_path):
    query = urllib.parse.urlencode({"error": "hs_code", "office": OFFICE})
    dom = _browse(chromium, f"{page_url}#{query}", tmp_path)
    assert _visible(dom) == ["D-001", "D-004"]
    assert [i["matched"] for i in dom.items if not i["hidden"]] == [["hs_code"], ["hs_code"]]
    assert dom.status == f"Showing 2 of 5 · Error type: Hs code · Customs office: {OFFICE}"


def test_browser_searches_declarations_and_reports_no_match(chromium, page_url, tmp_path):
    dom = _browse(chromium, page_url + "#q=x-0", tmp_path / "search")
    assert _visible(dom) == ["X-005"]
    dom = _browse(chromium, page_url + "#office=", tmp_path / "empty-office")
    assert _visible(dom) == ["X-005"]  # an empty office is an office (not declared), not "all"
    dom = _browse(chromium, page_url + "#office=nowhere", tmp_path / "unknown")
    assert _visible(dom) == []
    assert dom.no_match_hidden is False
