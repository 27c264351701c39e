"""The explainer page: self-contained, and its highlighting works in headless Chromium."""

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from cpjit import explain

SAMPLE = f"{Path(__file__).resolve().parent / 'data' / 'dump_sample.py'}:clamp"
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--window-size=1400,900"]


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    return explain.write_page(SAMPLE, call="7, 5",
                              output=str(tmp_path_factory.mktemp("explain") / "page.html"))


def test_page_is_self_contained_with_four_linked_columns(page):
    text = page.read_text()
    assert not re.search(r"""(src|href)\s*=|https?:|@import|url\(""", text)
    assert text.count("<section>") == 4
    # Source line 5 (`if x > limit:`) stands for the instructions at 2..12.
    assert re.search(r'<div class="row" data-ins="2 4 6 12"[^>]*><span class="dim">   5</span>',
                     text)
    uops = re.findall(r'<div class="row" data-ins="(\d+)" data-uop="(\d+)"', text)
    assert ("2", "2") in uops and ("6", "4") in uops
    assert 'class="hole"' in text and "wrote 0x" in text


def test_python_m_cpjit_explain(tmp_path):
    output = tmp_path / "clamp.html"
    result = subprocess.run([sys.executable, "-m", "cpjit", "explain", SAMPLE, "-o", str(output)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"wrote {output}\n"
    assert "cpjit: how dump_sample.clamp became machine code" in output.read_text()


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("no headless browser: install Debian's chromium and chromium-driver "
                    "(.ci/run does)")
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="cpjit-chromium-")
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _classes(driver, selector):
    return [element.get_attribute("class") for element in
            driver.find_elements("css selector", selector)]


def test_page_loads_without_errors_and_highlights_in_chromium(browser, page):
    from selenium.webdriver.common.action_chains import ActionChains

    browser.get(page.as_uri())
    assert [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"] == []
    source_line = browser.find_element("css selector", "section:nth-of-type(1) .row[data-ins]")
    ActionChains(browser).move_to_element(source_line).perform()
    # The bytecode, uops and machine code of that line light up.
    for column in (2, 3, 4):
        assert any("hl" in c.split() for c in _classes(browser, f"section:nth-of-type({column}) .row"))
    # Clicking a machine code row picks out its uop.
    row = browser.find_element("css selector", "section:nth-of-type(4) .row[data-uop='4']")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", row)
    row.click()
    uop = browser.find_element("css selector", "section:nth-of-type(3) .row[data-uop='4']")
    assert "hl2" in uop.get_attribute("class").split()
    # A hole shows its value.
    hole = browser.find_element("css selector", ".hole")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", hole)
    ActionChains(browser).move_to_element(hole).perform()
    info = browser.find_element("id", "info").text
    assert info.startswith("hole ") and " wrote " in info
    assert [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"] == []


COMPREHENDING = '''def scaled(xs, k):
    total = sum(xs)
    return [x * k for x in xs if x], total
'''


@pytest.fixture(scope="module")
def comprehension_page(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("explain_comprehension")
    source = folder / "comprehending.py"
    source.write_text(COMPREHENDING)
    return explain.write_page(f"{source}:scaled", call="[1, 0, 3], 2",
                              output=str(folder / "page.html"))


def test_a_comprehension_has_its_own_columns_a_tab_away(comprehension_page):
    text = comprehension_page.read_text()
    mains = re.findall(r'<main id="(main\d)" data-prefix="(s\d-)"( hidden)?>', text)
    assert mains == [("main0", "s0-", ""), ("main1", "s1-", " hidden")]
    assert text.count("<section>") == 8
    tabs = re.findall(r'<button data-main="(main\d)" title="([^"]*)"[^>]*>([^<]*)<', text)
    assert [(main, label) for main, _, label in tabs] == [
        ("main0", "comprehending.scaled"), ("main1", "&lt;listcomp&gt;")]
    assert "comprehending.scaled.&lt;listcomp&gt;: " in tabs[1][1] and "bytes of machine code" \
        in tabs[1][1]
    ids = re.findall(r' id="([^"]+)"', text)
    assert len(ids) == len(set(ids))  # (machine code rows of both, told apart)
    assert any(i.startswith("s1-m") for i in ids) and any(i.startswith("s0-m") for i in ids)
    # The comprehension's uops are its own: a BINARY_OP of x * k, in its columns only.
    second = text[text.index('<main id="main1"'):]
    assert "_BINARY_OP" in second and "x * k" in second


def test_comprehension_tabs_in_chromium(browser, comprehension_page):
    from selenium.webdriver.common.action_chains import ActionChains

    browser.get(comprehension_page.as_uri())
    assert [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"] == []
    first, second = browser.find_elements("css selector", "main")
    assert first.is_displayed() and not second.is_displayed()
    browser.find_element("css selector", "nav button[data-main='main1']").click()
    assert second.is_displayed() and not first.is_displayed()
    assert "listcomp" in browser.find_element("id", "info").text
    line = second.find_element("css selector", "section:nth-of-type(1) .row[data-ins]")
    ActionChains(browser).move_to_element(line).perform()
    lit = browser.find_elements("css selector", "main .row.hl, main .row.hl2")
    assert lit and all(second == row.find_element("xpath", "ancestor::main") for row in lit)
    assert any("hl" in c.split() for c in _classes(browser, "#main1 section:nth-of-type(4) .row"))
    browser.find_element("css selector", "nav button[data-main='main0']").click()
    assert first.is_displayed() and not second.is_displayed()
    assert [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"] == []
