"""The observer's page in a real browser: headless Debian chromium driven by selenium.

Trio runs the tree and the observer in the test; every selenium call (they
block) runs in a worker thread. The test waits for what the page shows with
generous `WebDriverWait` limits and never asserts on timing (docs/design.md
rule 47). Without chromium and chromedriver it skips, except under ``CI``,
where it fails: ``.ci/run`` installs them (Debian: chromium, chromium-driver).

The screenshot it saves is the one in docs/observer.md (docs/_static/observer.png).
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

import pytest
import trio
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from trio_smith import ChildSpec, DynamicSupervisor, Supervisor
from trio_smith.events import EventBus
from trio_smith.observer import Observer

EVIL = "<img src=x onerror=alert(1)>"

#: Real seconds the page may take to show a change: generous, never a measurement.
PATIENCE = 30.0

#: Each child row of the tree as the page rendered it: [id, status badge, meta].
_ROWS = """
return Array.from(document.querySelectorAll("#tree li.node:not(.sup)")).map(function (li) {
  var meta = li.querySelector(":scope > .meta");
  return [li.querySelector(":scope > .id").textContent,
          li.querySelector(":scope > .badge").textContent,
          meta === null ? "" : meta.textContent];
});
"""

T = TypeVar("T")


def unavailable(reason: str) -> NoReturn:
    """Skip the test because the browser is missing, or fail it when ``$CI`` is set."""
    if os.environ.get("CI"):
        pytest.fail(
            f"the observer's browser test must run in CI, but {reason} "
            "(.ci/run installs Debian's chromium and chromium-driver packages)",
            pytrace=False,
        )
    pytest.skip(f"{reason} (Debian: apt-get install chromium chromium-driver)")


@pytest.fixture
def browser_paths() -> tuple[str, str]:
    """The paths of chromium and chromedriver (a sync fixture: it skips outside trio)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None:
        unavailable("chromium is not installed")
    if driver is None:
        unavailable("chromedriver is not installed")
    return chromium, driver


def start_browser(chromium: str, chromedriver: str, profile: Path) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",  # we may be root, in a container
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1100,520",
    ):
        options.add_argument(flag)
    # The driver's path is given, so selenium never looks for one on the network.
    return webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)


def rows(driver: webdriver.Chrome) -> dict[str, tuple[str, str]]:
    """The page's child rows, read in one script (the page replaces them as it updates)."""
    return {child_id: (status, meta) for child_id, status, meta in driver.execute_script(_ROWS)}


async def in_thread(fn: Callable[..., T], *args: object) -> T:
    return await trio.to_thread.run_sync(functools.partial(fn, *args))


def wait_until(driver: webdriver.Chrome, condition: Callable[[webdriver.Chrome], object]) -> None:
    WebDriverWait(driver, PATIENCE, poll_frequency=0.05).until(condition)


async def idle() -> None:
    await trio.sleep_forever()


def crash_on(signal: trio.Event) -> ChildSpec:
    """A child that crashes once, when ``signal`` is set, and then runs."""
    crashed: list[bool] = []

    async def crashy() -> None:
        if not crashed:
            await signal.wait()
            crashed.append(True)
            raise RuntimeError("boom")
        await trio.sleep_forever()

    return ChildSpec("crashy", crashy)


async def test_the_page_shows_the_tree_and_a_restart_live_with_ids_as_text(
    tmp_path: Path, browser_paths: tuple[str, str]
) -> None:
    chromium, chromedriver = browser_paths
    crash = trio.Event()
    pool = DynamicSupervisor.spec("pool", ChildSpec("job", idle))
    children = [crash_on(crash), ChildSpec("steady", idle), ChildSpec(EVIL, idle), pool]
    async with (
        EventBus() as bus,
        Supervisor(children, name="app", events=bus) as root,
        Observer(root, bus=bus, tree_interval=0.05) as obs,
    ):
        await root.find("app/pool").start_child()  # type: ignore[call-arg]
        driver = await in_thread(start_browser, chromium, chromedriver, tmp_path / "profile")
        try:
            await in_thread(driver.get, obs.url)
            # The tree as first rendered, and the event stream open.
            await in_thread(
                wait_until,
                driver,
                lambda d: {"crashy", "steady", EVIL, "pool", "job-1"} <= rows(d).keys(),
            )
            await in_thread(
                wait_until, driver, lambda d: d.find_element(By.ID, "conn").text == "live"
            )
            before = await in_thread(rows, driver)
            assert before["crashy"] == ("running", "")
            # A reload would drop this mark: the restart must arrive without one.
            await in_thread(driver.execute_script, "window.stillThisPage = true;")

            crash.set()
            await in_thread(
                wait_until, driver, lambda d: rows(d)["crashy"] == ("running", "restarts 1")
            )
            assert await in_thread(driver.execute_script, "return window.stillThisPage;") is True
            after = await in_thread(rows, driver)
            assert after["steady"] == ("running", "")
            header = await in_thread(driver.find_element, By.ID, "root")
            assert header.text == "app · running"

            # The hostile id is shown as its characters: no element made of it, no alert.
            assert after[EVIL] == ("running", "")
            assert await in_thread(driver.find_elements, By.CSS_SELECTOR, "img") == []
            with pytest.raises(NoAlertPresentException):
                await in_thread(lambda: driver.switch_to.alert.text)

            shot = tmp_path / "observer.png"
            assert await in_thread(driver.save_screenshot, str(shot)) is True
            assert shot.read_bytes().startswith(b"\x89PNG")
        finally:
            with trio.CancelScope(shield=True):
                await in_thread(driver.quit)
        await root.shutdown()
