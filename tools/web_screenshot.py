"""Screenshot of the `agegender serve` page with the bundled photo dropped on it (docs/img/web-page.png).

    pip install -e ".[serve,dev]"   # plus Debian's chromium and chromium-driver
    python tools/web_screenshot.py docs/img/web-page.png
"""

from __future__ import annotations

import argparse
import shutil

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from agegender.bundled import EXAMPLE_PHOTO, asset_path
from agegender.inference.predict import Predictor
from agegender.serve import create_app, running


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="PNG file to write")
    ap.add_argument("--size", default="1100,700", help="browser window, WIDTH,HEIGHT")
    args = ap.parse_args()
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        raise SystemExit("needs chromium and chromedriver (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={args.size}"):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        with running(create_app(Predictor(), workers=1)) as (host, port):
            browser.get(f"http://{host}:{port}/")
            WebDriverWait(browser, 20).until(lambda d: "version" in d.find_element(By.ID, "about").text)
            upload = browser.find_element(By.ID, "files")
            browser.execute_script("arguments[0].hidden = false", upload)
            upload.send_keys(str(asset_path(EXAMPLE_PHOTO)))
            WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".photo[data-state]"))
            browser.execute_script("arguments[0].hidden = true", upload)
            browser.save_screenshot(args.out)
    finally:
        browser.quit()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
