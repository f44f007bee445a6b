"""The traffic pages in a real browser (Debian's headless chromium through Selenium): the
charts are drawn with data, the period changes without a reload, and the console stays clean."""
import threading
from datetime import datetime, timedelta, timezone

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait
from werkzeug.serving import make_server

from ispflow.analytics import rollups
from tests.sample_flows import flow, insert_flows
from ispflow.subscribers import Assignment, save_assignments

# Non-blank pixels of the chart's canvas, counted in the page.
INKED_PIXELS = """
const canvas = document.querySelector(arguments[0] + ' canvas');
if (!canvas) { return 0; }
const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
let inked = 0;
for (let i = 3; i < data.length; i += 4) { if (data[i] > 0) { inked += 1; } }
return inked;
"""


@pytest.fixture
def live_server(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000"):
        options.add_argument(argument)
    options.binary_location = "/usr/bin/chromium"
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path="/usr/bin/chromedriver"),
                              options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture
def traffic(app, db_engine):
    """The last day of one customer's traffic, half of it rolled up, half still raw."""
    from ispflow.extension import db

    now = datetime.now(timezone.utc)
    with app.app_context():
        save_assignments(db.session, [Assignment.parse("ACC-1", "home", "100.64.0.1/32", now - timedelta(days=30))])
        db.session.commit()
    rows = []
    for i in range(0, 24 * 12):
        at = now - timedelta(minutes=5 * i + 2)
        rows.append(flow(at, "203.0.113.5", "100.64.0.1", src_port=443, dst_port=50000, bytes=2_000_000 + 9_000 * i,
                         direction="in", account="ACC-1", service="home", seconds=30))
        rows.append(flow(at, "100.64.0.1", "198.51.100.8", src_port=50001, dst_port=53, protocol=17, bytes=40_000,
                         direction="out", account="ACC-1", service="home"))
    with db_engine.connect() as conn:
        insert_flows(conn, rows)
        conn.commit()
    rollups.update(db_engine, now=now - timedelta(hours=12))


def login(browser, base, auth, role, **kwargs):
    username = auth.create(role, **kwargs)
    browser.get(f"{base}/login")
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys("correct horse battery")
    browser.find_element(By.CSS_SELECTOR, "form button, form [type=submit]").click()
    WebDriverWait(browser, 20).until(lambda b: "/login" not in b.current_url)
    browser.get_log("browser")  # the login page's own messages (its favicon) are not under test


def drawn(browser, selector: str) -> int:
    WebDriverWait(browser, 30).until(
        lambda b: b.find_element(By.CSS_SELECTOR, selector).get_attribute("data-drawn"))
    return browser.execute_script(INKED_PIXELS, selector)


def console_errors(browser) -> list:
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


@pytest.mark.parametrize("role", ["customer", "technician"])
def test_graph_page_draws_the_bandwidth_chart(browser, live_server, auth, traffic, role):
    login(browser, live_server, auth, role)
    browser.get(f"{live_server}/netflow/traffic?period=day" + ("" if role == "customer" else "&kind=account&value=ACC-1"))
    assert drawn(browser, "#bandwidth-chart") > 1000
    assert int(browser.find_element(By.ID, "bandwidth-chart").get_attribute("data-drawn")) == 288
    assert len(browser.find_elements(By.CSS_SELECTOR, "#bandwidth-table tbody tr")) == 288
    assert console_errors(browser) == []


@pytest.mark.parametrize("role", ["customer", "compliance"])
def test_top_report_draws_its_bars(browser, live_server, auth, traffic, role):
    login(browser, live_server, auth, role)
    browser.get(f"{live_server}/netflow/top?by=application&period=day" + ("" if role == "customer" else "&account=ACC-1"))
    assert drawn(browser, "#top-chart") > 1000
    cells = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "#top-table tbody tr td:nth-child(2)")]
    assert cells[:2] == ["web", "DNS"]
    assert console_errors(browser) == []


def test_changing_the_period_redraws_without_a_reload(browser, live_server, auth, traffic):
    login(browser, live_server, auth, "customer")
    browser.get(f"{live_server}/netflow/traffic?period=day")
    drawn(browser, "#bandwidth-chart")
    browser.execute_script("window.ispflowSamePage = true;")
    Select(browser.find_element(By.ID, "period")).select_by_value("hour")
    WebDriverWait(browser, 30).until(
        lambda b: b.find_element(By.ID, "bandwidth-chart").get_attribute("data-drawn") == "60")
    assert browser.execute_script("return window.ispflowSamePage === true;")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#bandwidth-table tbody tr")) == 60
    assert "period=hour" in browser.current_url
    assert console_errors(browser) == []
