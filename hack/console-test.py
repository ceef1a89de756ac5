"""The web console in a real browser (Chromium through chromedriver and Selenium).

Run by hack/console-test.sh, which starts the server, the fleet repository and the simulated
devices and passes them here in the environment. Each check says what it expected and saw.
"""
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

URL = os.environ["CONSOLE_URL"]
TOKEN = os.environ["CONSOLE_TOKEN"]
OTHER_TOKEN = os.environ["CONSOLE_OTHER_TOKEN"]
CLONE = os.environ["CONSOLE_CLONE"]
SHOTS = os.environ["CONSOLE_SHOTS"]
DEVICES = int(os.environ["CONSOLE_DEVICES"])


def step(text):
    print(f"console: {text}", flush=True)


def fail(text):
    print(f"console test FAILED: {text}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def browser(width=1280, height=900):
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--window-size={width},{height}", "--lang=en-US"):
        options.add_argument(argument)
    options.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(30)
    return driver


def wait_for(driver, what, predicate, seconds=120):
    deadline = time.time() + seconds
    last = None
    while time.time() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as error:  # the page may be swapping its main part
            last = error
        time.sleep(0.5)
    shot(driver, "failure")
    fail(f"{what} within {seconds} s; last saw: {last!r}; page: {driver.find_element(By.TAG_NAME, 'main').text[:1500]}")


def shot(driver, name):
    path = os.path.join(SHOTS, f"{name}.png")
    driver.save_screenshot(path)
    return path


def sign_in(driver, token, screenshot=None):
    driver.get(URL + "/")
    if "/sign-in" not in driver.current_url:
        fail(f"an anonymous visit to / should land on the sign-in page, was {driver.current_url}")
    field = driver.find_element(By.ID, "token")
    if screenshot:
        shot(driver, screenshot)
    field.send_keys(token)
    field.send_keys(Keys.ENTER)  # the keyboard alone signs in


def target_counts(driver, app, group):
    """The legend of one target's convergence bar on the overview: {"converged": n, ...}, with its version."""
    for row in driver.find_elements(By.CSS_SELECTOR, f"section[aria-labelledby='app-{app}'] tbody tr"):
        cells = row.find_elements(By.TAG_NAME, "td")
        if cells and cells[0].text == group:
            counts = {span.get_attribute("data-count"): int(span.text.split()[0])
                      for span in cells[3].find_elements(By.CSS_SELECTOR, "[data-count]")}
            return cells[1].text, counts
    return None, {}


def git(*arguments):
    subprocess.run(["git", "-C", CLONE, "-c", "user.name=Operator", "-c", "user.email=ops@acme.example", *arguments],
                   check=True, capture_output=True)


def post(path, cookie, body):
    request = urllib.request.Request(URL + path, data=body.encode(), method="POST",
                                     headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def main():
    driver = browser()
    try:
        step("sign in with an operator token, by keyboard")
        sign_in(driver, TOKEN, screenshot="sign-in")
        wait_for(driver, "the overview after signing in", lambda: "Overview of acme-climate" in driver.find_element(By.TAG_NAME, "h1").text, 30)
        cookie = driver.get_cookie("flotilla_session")
        if not cookie or not cookie.get("httpOnly") or cookie.get("sameSite") != "Strict":
            fail(f"the session cookie should be HttpOnly and SameSite=Strict: {cookie}")
        if driver.execute_script("return document.cookie").find("flotilla_session") >= 0:
            fail("a script can read the session cookie")

        step(f"the overview shows the fleet: all {DEVICES} devices converge")
        def converged():
            total, done = 0, 0
            for section in driver.find_elements(By.CSS_SELECTOR, "main section"):
                for span in section.find_elements(By.CSS_SELECTOR, "[data-count]"):
                    number = int(span.text.split()[0])
                    total += number
                    done += number if span.get_attribute("data-count") == "converged" else 0
            return (total, done) if total == DEVICES and done == DEVICES else None
        wait_for(driver, f"{DEVICES} devices converged on the overview", converged, 180)
        shot(driver, "overview")

        step("a version bump is committed; the overview moves to it without a reload")
        driver.execute_script("window.notReloaded = true;")
        version, _ = target_counts(driver, "thermostat", "europe")
        with open(os.path.join(CLONE, "apps/thermostat.yaml")) as file:
            text = file.read()
        bumped = text.replace("    version: 2.4.1\n", "    version: 2.4.2\n", 1).replace("thermostat/2.4.1/", "thermostat/2.4.2/")
        if bumped == text or version != "2.4.1":
            fail(f"the template's europe target should be at 2.4.1 (the overview says {version})")
        with open(os.path.join(CLONE, "apps/thermostat.yaml"), "w") as file:
            file.write(bumped)
        git("commit", "--quiet", "-am", "thermostat 2.4.2 for Europe")
        git("push", "--quiet", "origin", "HEAD:main")
        seen = set()
        def moved():
            version, counts = target_counts(driver, "thermostat", "europe")
            seen.update(name for name, count in counts.items() if count and name != "converged")
            if version == "2.4.2" and counts.get("converged", 0) > 0 and counts.get("converged") == sum(counts.values()):
                return counts
            return None
        counts = wait_for(driver, "europe converged on 2.4.2 on the open overview", moved, 180)
        if not driver.execute_script("return window.notReloaded === true;"):
            fail("the page reloaded; it should have updated in place")
        if driver.find_element(By.ID, "live-status").text != "live":
            fail("the page should say it is live")
        step(f"  europe converged on 2.4.2 ({counts}); passed through {sorted(seen) or 'nothing else'} on the way")
        shot(driver, "overview-after-bump")

        step("the rollout's page lists its waves")
        driver.find_element(By.LINK_TEXT, "europe").click()
        wait_for(driver, "the rollout page", lambda: "Rollout of thermostat to europe" in driver.find_element(By.TAG_NAME, "h1").text, 30)
        waves = [element.text for element in driver.find_elements(By.CSS_SELECTOR, "main section h2")]
        if len(waves) < 2 or not waves[0].startswith("Wave 1: 2.4.2") or not waves[1].startswith("Wave 2: 2.4.2"):
            fail(f"the rollout page should list the waves of 2.4.2 in order: {waves}")
        shot(driver, "rollout")

        step("the commits page says which devices run what the commit in force wants")
        driver.find_element(By.LINK_TEXT, "Commits").click()
        wait_for(driver, "the commits page", lambda: driver.find_element(By.TAG_NAME, "h1").text == "Commits", 30)

        # Which versions devices run comes from the console's list of devices, read again every
        # few seconds (the page says as of when): reloaded until it has caught up with the overview.
        def names_the_commit_and_its_devices():
            text = driver.find_element(By.TAG_NAME, "main").text
            if "thermostat 2.4.2 for Europe by Operator" in text and f"2.4.2 {counts['converged']} desired for europe" in text:
                return text
            driver.refresh()
            return None
        wait_for(driver, f"the commits page to name the commit and the {counts['converged']} devices on 2.4.2",
                 names_the_commit_and_its_devices, 30)
        shot(driver, "commits")

        step("a device search with a bad selector says where")
        driver.get(URL + "/devices")
        field = driver.find_element(By.ID, "selector")
        field.send_keys("group in (canary")
        field.send_keys(Keys.ENTER)
        error = wait_for(driver, "the selector's error", lambda: driver.find_element(By.ID, "selector-error").text, 30)
        if "column 17" not in error or "'+'" in error:
            fail(f"the error should name column 17, past the missing ')': {error}")
        step(f"  {error.splitlines()[0]}")
        shot(driver, "devices-bad-selector")
        # The list is shared by the pages for a second or so (it says as of when): asked again, it catches up.
        def listed():
            driver.get(URL + "/devices?app=thermostat&version=2.4.2")
            rows = driver.find_elements(By.CSS_SELECTOR, "main tbody tr")
            return rows if len(rows) == counts["converged"] else None
        rows = wait_for(driver, f"the device list finding the {counts['converged']} devices on thermostat 2.4.2", listed, 15)
        shot(driver, "devices")

        step("a device's page shows its charts")
        rows[0].find_element(By.TAG_NAME, "a").click()
        wait_for(driver, "the device page", lambda: driver.find_element(By.TAG_NAME, "h1").text.startswith("Device "), 30)
        def charted():
            driver.refresh()
            charts = driver.find_elements(By.CSS_SELECTOR, "figure.chart svg")
            lines = driver.find_elements(By.CSS_SELECTOR, "figure.chart svg path")
            return (len(charts), len(lines)) if len(charts) == 3 and len(lines) >= 3 else None
        charts = wait_for(driver, "three charts with lines", charted, 150)
        labels = [svg.get_attribute("aria-label") for svg in driver.find_elements(By.CSS_SELECTOR, "figure.chart svg")]
        step(f"  {charts[0]} charts: {labels}")
        shot(driver, "device")

        step("suspend works and is audited")
        driver.get(URL + "/")
        section = driver.find_element(By.CSS_SELECTOR, "section[aria-labelledby='app-thermostat']")
        section.find_element(By.XPATH, ".//button[text()='Suspend']").click()
        wait_for(driver, "the app shown as suspended", lambda: "suspended" in driver.find_element(
            By.CSS_SELECTOR, "section[aria-labelledby='app-thermostat'] h2").text, 30)
        driver.get(URL + "/audit")
        audit = driver.find_element(By.TAG_NAME, "main").text
        if "app.suspend" not in audit or "thermostat" not in audit:
            fail(f"the audit log should show the suspension: {audit[:600]}")
        shot(driver, "audit")

        step("a form without the CSRF token is refused")
        session = f"flotilla_session={cookie['value']}"
        status, body = post("/apps/thermostat/resume", session, "")
        if status != 403 or "CSRF" not in body:
            fail(f"a resume without the CSRF token should be 403, was {status}")
        driver.get(URL + "/")
        if "suspended" not in driver.find_element(By.CSS_SELECTOR, "section[aria-labelledby='app-thermostat'] h2").text:
            fail("the refused form resumed the app")
        section = driver.find_element(By.CSS_SELECTOR, "section[aria-labelledby='app-thermostat']")
        section.find_element(By.XPATH, ".//button[text()='Resume']").click()
        wait_for(driver, "the app resumed", lambda: "suspended" not in driver.find_element(
            By.CSS_SELECTOR, "section[aria-labelledby='app-thermostat'] h2").text, 30)

        step("on a phone's width nothing overflows sideways")
        driver.set_window_size(390, 844)
        driver.get(URL + "/")
        # After a dozen pages of one session, the newest still gets its live stream.
        wait_for(driver, "the overview live again", lambda: driver.find_element(By.ID, "live-status").text == "live", 15)
        overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth;")
        if overflow > 2:
            fail(f"the overview is {overflow} px wider than a phone's screen")
        shot(driver, "overview-phone")
        driver.set_window_size(1280, 900)

        step("sign out ends the session")
        device_url = URL + "/devices"
        driver.find_element(By.XPATH, "//button[text()='Sign out']").click()
        wait_for(driver, "the sign-in page", lambda: "/sign-in" in driver.current_url, 30)
        driver.get(device_url)
        if "/sign-in" not in driver.current_url:
            fail("after signing out, pages should ask to sign in again")
        status, _ = post("/reconcile", session, "csrf=x")
        if status != 401:
            fail(f"the signed-out session's cookie should be refused, was {status}")

        step("another project's session sees nothing of this one")
        driver.delete_all_cookies()
        sign_in(driver, OTHER_TOKEN)
        wait_for(driver, "the other project's overview", lambda: "Overview of other" in driver.find_element(By.TAG_NAME, "h1").text, 30)
        main_text = driver.find_element(By.TAG_NAME, "main").text
        if "thermostat" in main_text or "No repository is reconciled for project other" not in main_text:
            fail(f"the other project's overview shows this one: {main_text[:400]}")
        driver.get(URL + "/devices")
        if driver.find_elements(By.CSS_SELECTOR, "main tbody tr"):
            fail("the other project's device list shows devices")
        driver.get(URL + "/rollouts/thermostat/europe")
        if "Not found" not in driver.find_element(By.TAG_NAME, "h1").text:
            fail("the other project's session reached this project's rollout")
        step(f"all checks passed; screenshots in {SHOTS}")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
