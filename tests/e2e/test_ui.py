"""The admin UI in a real browser (Debian's chromium, driven by Playwright): sign in with the
master key, create a key and use it from the OpenAI SDK, watch the request arrive in the live
log, see its spend, block the key and see it refused; a virtual key's session sees only its
own data; the session and its CSRF guard hold. A screenshot of every page is kept under
target/ui-screenshots/ (look at them).
"""
import json
import os
import time
import urllib.request

import openai
import pytest

from conftest import ROOT, own_gateway

MASTER = "sk-ui-master-key-0001"
UPSTREAM_SECRET = "sk-upstream-do-not-show"
SHOTS = os.path.join(ROOT, "target", "ui-screenshots")
CHROMIUM = os.environ.get("DRAGOMAN_CHROMIUM", "/usr/bin/chromium")

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is installed by scripts/test.sh")
if not os.path.exists(CHROMIUM):
    pytest.skip(f"no browser at {CHROMIUM}: .ci/run installs Debian's chromium", allow_module_level=True)


@pytest.fixture(scope="module")
def ui_gateway():
    def config(mock_port, work):
        return f"""
model_list:
  - model_name: gpt
    litellm_params: {{model: openai/gpt, api_base: "http://127.0.0.1:{mock_port}/v1", api_key: {UPSTREAM_SECRET}, input_cost_per_token: 0.000001, output_cost_per_token: 0.00001}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude, api_base: "http://127.0.0.1:{mock_port}", api_key: {UPSTREAM_SECRET}}}
general_settings:
  master_key: {MASTER}
dragoman_settings:
  database_path: {os.path.join(work, "ui.db")}
"""

    with own_gateway(config) as g:
        yield g.url


@pytest.fixture(scope="module")
def browser():
    os.makedirs(SHOTS, exist_ok=True)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def shot(page, name):
    page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def sign_in(page, base, key):
    page.goto(f"{base}/ui")
    page.get_by_label("Master key or virtual key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Log out").wait_for()


def sdk(base, key):
    return openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)


def test_an_operator_runs_a_team_from_the_ui(ui_gateway, browser):
    base = ui_gateway
    ctx = browser.new_context(viewport={"width": 1366, "height": 860})
    page = ctx.new_page()
    page.goto(f"{base}/ui")
    page.get_by_label("Master key or virtual key").wait_for()
    shot(page, "01-login")
    # A wrong key is refused on the page.
    page.get_by_label("Master key or virtual key").fill("sk-wrong")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").filter(has_text="not valid").wait_for()
    sign_in(page, base, MASTER)
    page.get_by_role("heading", name="Overview", exact=True).wait_for()
    # The browser keeps no key: storage is empty and the session cookie is out of the page's reach.
    stored = page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie")
    assert MASTER not in stored and "dragoman_ui" not in stored, stored
    cookies = {c["name"]: c for c in ctx.cookies()}
    assert cookies["dragoman_ui"]["httpOnly"] and cookies["dragoman_ui"]["sameSite"] == "Strict"
    assert MASTER not in cookies["dragoman_ui"]["value"]

    # A team, then a key in it, from the forms.
    page.get_by_role("link", name="Teams").click()
    page.get_by_label("Name").fill("platform")
    page.get_by_role("button", name="Create team").click()
    page.get_by_role("cell", name="platform", exact=True).wait_for()
    shot(page, "02-teams")
    page.get_by_role("link", name="Keys").click()
    page.get_by_label("Alias").fill("ann-laptop")
    page.get_by_label("Team").select_option(label="platform")
    page.get_by_label("Budget (USD)").fill("5")
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#new-key").inner_text().strip()
    assert key.startswith("sk-"), key
    page.get_by_role("cell", name="ann-laptop", exact=True).wait_for()
    shot(page, "03-keys-new-key-shown-once")

    # The key works from the SDK, and its request shows up in the live log.
    page.get_by_role("link", name="Requests").click()
    page.get_by_role("heading", name="Requests", exact=True).wait_for()
    r = sdk(base, key).chat.completions.create(model="gpt", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content
    page.get_by_role("cell", name="ann-laptop").first.wait_for(timeout=10_000)
    shot(page, "04-requests-live")
    page.get_by_role("cell", name="ann-laptop").first.click()
    page.get_by_role("heading", name="Attempts", exact=True).wait_for()
    assert "gpt" in page.inner_text("main")
    shot(page, "05-request-detail")

    # Its spend is on the keys page (the mock's usage at the configured prices).
    page.get_by_role("link", name="Keys").click()
    row = page.get_by_role("row").filter(has_text="ann-laptop")
    row.wait_for()
    # The record reaches the store a moment after the answer; the page shows what is there.
    for _ in range(50):
        if "$0.001354" in row.inner_text():
            break
        time.sleep(0.1)
        page.reload()
        row = page.get_by_role("row").filter(has_text="ann-laptop")
        row.wait_for()
    assert "$0.001354" in row.inner_text(), row.inner_text()

    # Some more traffic for the charts: Chat to both groups (Claude's translated).
    for model in ["gpt", "claude", "gpt", "claude"]:
        sdk(base, key).chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], presence_penalty=0.5
        )
    # What translation dropped is on the request's page (Claude takes no presence_penalty).
    page.get_by_role("link", name="Requests").click()
    page.get_by_role("cell", name="claude", exact=True).first.wait_for(timeout=10_000)
    page.get_by_role("cell", name="claude", exact=True).first.click()
    page.get_by_role("heading", name="Dropped or approximated in translation", exact=True).wait_for()
    assert "presence_penalty" in page.locator("ul.dropped").inner_text()
    shot(page, "05b-request-detail-dropped")
    page.get_by_role("link", name="Keys").click()
    row = page.get_by_role("row").filter(has_text="ann-laptop")

    # Limits and budget changed from the page (its prompts answered in turn): the key API has them.
    answers = iter(["7.5", "30d", "100", ""])
    def answer(dialog):
        dialog.accept(next(answers))

    page.on("dialog", answer)
    row.get_by_role("button", name="Edit limits").click()
    page.get_by_role("row").filter(has_text="ann-laptop").filter(has_text="$7.50").wait_for()
    page.remove_listener("dialog", answer)
    info = json.load(urllib.request.urlopen(urllib.request.Request(
        f"{base}/key/info?key={key}", headers={"Authorization": f"Bearer {MASTER}"})))["info"]
    assert (info["max_budget"], info["budget_duration"], info["rpm_limit"], info["tpm_limit"]) == (7.5, "30d", 100, None), info
    row = page.get_by_role("row").filter(has_text="ann-laptop")

    # Blocked from the UI: the SDK is refused.
    row.get_by_role("button", name="Block").click()
    page.get_by_role("row").filter(has_text="ann-laptop").filter(has_text="blocked").wait_for()
    with pytest.raises(openai.PermissionDeniedError):
        sdk(base, key).chat.completions.create(model="gpt", messages=[{"role": "user", "content": "hi"}])
    shot(page, "06-keys-blocked")

    page.get_by_role("link", name="Overview").click()
    page.reload()  # a fresh page: no notices over the charts
    page.get_by_role("heading", name="By key", exact=True).wait_for()
    shot(page, "07-overview")
    page.get_by_role("link", name="Models").click()
    page.get_by_role("cell", name="gpt", exact=True).wait_for()
    shot(page, "08-models")
    page.get_by_role("link", name="Config").click()
    cfg = page.locator("#config").inner_text()
    assert UPSTREAM_SECRET not in cfg and MASTER not in cfg and "********" in cfg
    shot(page, "09-config")
    page.get_by_role("link", name="Users").click()
    page.get_by_label("User id").fill("ann@example.com")
    page.get_by_role("button", name="Create user").click()
    page.get_by_role("cell", name="ann@example.com", exact=True).wait_for()
    shot(page, "10-users")
    # Deleting asks first; accepted, the user is gone.
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("row").filter(has_text="ann@example.com").get_by_role("button", name="Delete").click()
    page.get_by_text("No users yet.").wait_for()
    html = page.content()
    assert MASTER not in html and UPSTREAM_SECRET not in html

    # On a phone.
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    p2 = phone.new_page()
    sign_in(p2, base, MASTER)
    p2.get_by_role("heading", name="Overview", exact=True).wait_for()
    shot(p2, "11-overview-phone")
    p2.get_by_role("link", name="Keys").click()
    p2.get_by_role("cell", name="ann-laptop", exact=True).wait_for()
    shot(p2, "12-keys-phone")
    phone.close()

    # Keyboard only: the nav links are reachable with Tab and follow with Enter.
    page.goto(f"{base}/ui#/overview")
    page.get_by_role("heading", name="Overview", exact=True).wait_for()
    page.keyboard.press("Tab")  # skip link
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Keys":
            break
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Keys", exact=True).wait_for()

    paint = page.evaluate(
        "(() => { const e = performance.getEntriesByName('first-contentful-paint')[0]; return e ? e.startTime : null; })()"
    )
    with open(os.path.join(SHOTS, "timings.json"), "w") as f:
        json.dump({"first_contentful_paint_ms": paint}, f)
    ctx.close()


def test_a_virtual_key_sees_only_its_own_data(ui_gateway, browser):
    base = ui_gateway

    def admin(path, body):
        req = urllib.request.Request(
            f"{base}{path}", data=json.dumps(body).encode(), method="POST",
            headers={"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req) as r:
            return json.load(r)

    bob = admin("/key/generate", {"key_alias": "bob"})["key"]
    eve = admin("/key/generate", {"key_alias": "eve"})["key"]
    for k in (bob, eve):
        sdk(base, k).chat.completions.create(model="gpt", messages=[{"role": "user", "content": "hi"}])
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    page = ctx.new_page()
    sign_in(page, base, bob)
    page.get_by_role("heading", name="Key bob", exact=True).wait_for()
    nav = page.get_by_role("navigation", name="Sections").inner_text()
    assert "Keys" not in nav and "Config" not in nav, nav
    shot(page, "13-virtual-key-overview")
    page.get_by_role("link", name="My requests").click()
    page.get_by_role("cell", name="bob").first.wait_for(timeout=10_000)
    text = page.inner_text("main")
    assert "eve" not in text, text
    shot(page, "14-virtual-key-requests")
    # The session cannot read what the key cannot, even by calling the API itself.
    csrf = page.evaluate("fetch('/ui/api/session').then(r => r.json()).then(s => s.csrf)")
    for path in ["/key/list", "/team/list", "/ui/api/config", "/ui/api/deployments"]:
        status = page.evaluate(f"fetch('{path}', {{headers: {{'x-dragoman-csrf': '{csrf}'}}}}).then(r => r.status)")
        assert status in (401, 403), (path, status)
    logs = page.evaluate(f"fetch('/spend/logs?api_key={eve}', {{headers: {{'x-dragoman-csrf': '{csrf}'}}}}).then(r => r.json())")
    assert logs and all(r["key_alias"] == "bob" for r in logs), logs
    # Without its CSRF header the session cookie authenticates nothing (what a cross-site form
    # would send).
    status = page.evaluate("fetch('/spend/logs').then(r => r.status)")
    assert status == 401
    status = page.evaluate(
        "fetch('/v1/chat/completions', {method: 'POST', headers: {'content-type': 'application/json'}, "
        "body: JSON.stringify({model: 'gpt', messages: [{role: 'user', content: 'hi'}]})}).then(r => r.status)"
    )
    assert status == 401
    # Logging out ends the session.
    page.get_by_role("button", name="Log out").click()
    page.get_by_label("Master key or virtual key").wait_for()
    assert page.evaluate("fetch('/ui/api/session').then(r => r.status)") == 401
    ctx.close()


def test_ui_pages_carry_a_strict_content_security_policy(ui_gateway):
    with urllib.request.urlopen(f"{ui_gateway}/ui") as r:
        csp = r.headers["content-security-policy"]
        body = r.read().decode()
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    # Nothing loads from another origin: every asset is inside the binary (SVG's namespace is
    # a name, not an address).
    for asset in ["", "/app.js", "/app.css", "/favicon.svg"]:
        with urllib.request.urlopen(f"{ui_gateway}/ui{asset}") as r:
            assert r.status == 200
            text = r.read().decode().replace("http://www.w3.org/2000/svg", "")
            assert "https://" not in text and "http://" not in text, asset
    assert "<script" in body
