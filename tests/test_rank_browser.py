"""A real browser ranks an item with the keyboard only: Debian Chromium driven by Playwright.

Skipped (with the reason) only when /usr/bin/chromium is absent: `apt-get install -y chromium`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from raipipe.posttrain.ranking.demo import seed_demo
from raipipe.posttrain.ranking.store_ops import list_rankings
from raipipe.posttrain.ranking.web import create_app
from raipipe.store import open_store
from raipipe.web_support import serve_in_thread

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"{CHROMIUM} is absent: install it with `apt-get install -y chromium`")


@pytest.fixture()
def server(tmp_path):
    db = tmp_path / "browser.db"
    seed_demo(open_store(db))
    with serve_in_thread(create_app(db, batch_id="demo")) as base:
        yield base, db


def test_rank_an_item_with_the_keyboard_only(server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    base, db = server
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(base + "/")
            # The rater id field takes focus by itself (autofocus); wait for it, as a person would see the
            # cursor, rather than racing a cold browser start.
            page.wait_for_function("document.activeElement && document.activeElement.id === 'rater_id'")
            page.keyboard.type("kim")
            page.keyboard.press("Enter")
            page.wait_for_url("**/item?**")
            ids = [int(x) for x in page.eval_on_selector_all(".cand", "els => els.map(e => e.dataset.id)")]
            assert len(ids) == 4
            record = page.input_value("input[name=record_id]")

            for key in ("3", "1", "4", "Backspace", "2"):  # pick 3, 1, 4; undo 4; pick 2
                page.keyboard.press(key)
            bar = page.inner_text("#orderbar")
            assert "Response 3" in bar and "Response 1" in bar and "Response 2" in bar and "Response 4" not in bar
            assert page.inner_text(".cand[data-key='3'] .rank") == "1st"
            assert page.input_value("#order") == f"{ids[2]},{ids[0]},{ids[1]}"
            page.screenshot(path=str(tmp_path / "rank.png"))
            if os.environ.get("RAIPIPE_RANK_SCREENSHOT"):
                shutil.copy(tmp_path / "rank.png", os.environ["RAIPIPE_RANK_SCREENSHOT"])

            page.keyboard.press("Enter")  # the last candidate is filled in, then the form is submitted
            page.wait_for_url("**saved=**")
            assert "Saved your ranking" in page.content()
            next_record = page.input_value("input[name=record_id]")
            assert next_record != record

            page.keyboard.press("s")  # skip goes on to a third item
            page.wait_for_function(f"document.querySelector('input[name=record_id]').value !== '{next_record}'")
        finally:
            browser.close()

    with open_store(db)() as s:
        rows = list_rankings(s)
    assert [(r.record_id, r.rater_id, r.rater_kind, r.order) for r in rows] == [
        (record, "kim", "human", [ids[2], ids[0], ids[1], ids[3]])]
    assert (tmp_path / "rank.png").stat().st_size > 10_000
