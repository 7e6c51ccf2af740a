"""The web page at `/`, driven in a real headless browser (Debian's chromium + chromedriver, via selenium).

Skipped when no chromium is installed, unless AGEGENDER_REQUIRE_BROWSER=1 (as `.ci/run` sets, after
installing it) turns the skip into a failure.
"""

import os
import shutil

import pytest
from fixtures import composed_photos

from agegender.inference.predict import Predictor
from agegender.serve import create_app, running

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        if os.environ.get("AGEGENDER_REQUIRE_BROWSER") == "1":
            pytest.fail("AGEGENDER_REQUIRE_BROWSER=1 but chromium / chromedriver are not installed")
        pytest.skip("no chromium + chromedriver on this machine (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1200,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def test_page_uploads_a_photo_and_draws_the_face_with_its_predictions(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    photo = composed_photos(tmp_path / "in", 1)[0]
    expected = Predictor().predict(photo)
    assert len(expected) == 1
    with running(create_app(Predictor(), workers=1)) as (host, port):
        browser.get(f"http://{host}:{port}/")
        WebDriverWait(browser, 20).until(lambda d: "version" in d.find_element(By.ID, "about").text)
        upload = browser.find_element(By.ID, "files")
        browser.execute_script("arguments[0].hidden = false", upload)
        upload.send_keys(str(photo))
        WebDriverWait(browser, 60).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, ".photo[data-state]"))
        block = browser.find_element(By.CSS_SELECTOR, ".photo")
        assert block.get_attribute("data-state") == "done", block.text
        canvas = block.find_element(By.TAG_NAME, "canvas")
        assert canvas.get_attribute("data-boxes") == "1"
        face = expected[0]
        heading = block.find_element(By.CSS_SELECTOR, ".face h3").text
        assert face.gender in heading and f"age {face.age_group}" in heading
        if face.age_years is not None:
            assert f"{face.age_years:.0f} years" in heading
        bars = block.find_elements(By.CSS_SELECTOR, ".face .bar")
        assert len(bars) == 8 and face.age_group in block.find_element(By.CSS_SELECTOR, ".bar.top").text
        # the box is drawn on the picture: the pixel on its left edge is the first face's colour (#e6194b)
        x, y, w, h = face.box
        rgb = browser.execute_script(
            "const c = arguments[0]; return Array.from(c.getContext('2d').getImageData(arguments[1], "
            "arguments[2], 1, 1).data).slice(0, 3);", canvas, int(x), int(y + h / 2))
        assert abs(rgb[0] - 0xE6) < 30 and abs(rgb[1] - 0x19) < 30 and abs(rgb[2] - 0x4B) < 30, rgb
        browser.save_screenshot(str(tmp_path / "page.png"))
        if os.environ.get("AGEGENDER_SCREENSHOT"):
            browser.save_screenshot(os.environ["AGEGENDER_SCREENSHOT"])


class TurnedDetector:
    """The default detector with each face's nose moved half an eye distance along the eye line: the
    records say the head is turned 45 degrees (framing.face_yaw)."""

    name = "blazeface"

    def __init__(self):
        from agegender.inference.detect import create_detector

        self.inner = create_detector("default")

    def detect(self, image):
        from agegender.inference.detect import Detection

        out = []
        for d in self.inner.detect(image):
            pts = list(d.landmarks)
            (rx, ry), (lx, ly), (nx, ny) = pts[:3]
            pts[2] = (nx + (lx - rx) / 2, ny + (ly - ry) / 2)
            out.append(Detection(d.box, d.score, tuple(pts)))
        return out


def test_page_says_when_a_face_is_turned(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    photo = composed_photos(tmp_path / "in", 1)[0]
    (face,) = Predictor(detector=TurnedDetector()).predict(photo)
    assert 40 < abs(face.yaw) < 50  # 45 degrees more than the face's own small turn
    (frontal,) = Predictor().predict(photo)
    assert abs(frontal.yaw) < 30
    for predictor, turned in ((Predictor(detector=TurnedDetector()), True), (Predictor(), False)):
        with running(create_app(predictor, workers=1)) as (host, port):
            browser.get(f"http://{host}:{port}/")
            WebDriverWait(browser, 20).until(lambda d: "version" in d.find_element(By.ID, "about").text)
            upload = browser.find_element(By.ID, "files")
            browser.execute_script("arguments[0].hidden = false", upload)
            upload.send_keys(str(photo))
            WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".photo[data-state]"))
            notes = browser.find_elements(By.CSS_SELECTOR, ".face .turned")
            if turned:
                assert len(notes) == 1 and notes[0].text.startswith("Head turned about "), [n.text for n in notes]
                shown = float(notes[0].text.removeprefix("Head turned about ").split("°")[0])
                assert abs(shown - abs(face.yaw)) <= 0.5
            else:
                assert notes == []


def test_page_shows_a_clear_error_for_a_file_that_is_not_an_image(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    bad = tmp_path / "notes.jpg"
    bad.write_bytes(b"this is not a photo")
    with running(create_app(Predictor(), workers=1)) as (host, port):
        browser.get(f"http://{host}:{port}/")
        upload = browser.find_element(By.ID, "files")
        browser.execute_script("arguments[0].hidden = false", upload)
        upload.send_keys(str(bad))
        WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".photo[data-state]"))
        block = browser.find_element(By.CSS_SELECTOR, ".photo")
        assert "notes.jpg" in block.text and "cannot read image" in block.text
