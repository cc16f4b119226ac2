"""The console in a real browser (Chromium from the distribution, driven by Playwright).

    console_browser.py BASE_URL ADMIN_PASSWORD SCREENSHOT_DIR

Walks what issue 15 asks for, against a live Gatehouse: a failed sign-in shows the
error; sign in; create a group and a user in it; register a repository; grant the group
read on it; ask "why" and see the grant; move the time slider to before the grant and
see the user without it (and "why" say no); the timeline, the diff and the integrity
check; create and revoke a token; sign out and find the session gone on the server; a
non-admin cannot reach the admin pages; a user whose password expired can change it. No page may break its Content-Security-Policy.
"""
import base64
import json
import os
import sys
import urllib.error
import urllib.request

from playwright.sync_api import expect, sync_playwright

BASE, ADMIN_PASSWORD, SHOTS = sys.argv[1], sys.argv[2], sys.argv[3]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
expect.set_options(timeout=15_000)


def http(method, path, headers=None, body=None):
    req = urllib.request.Request(BASE + path, method=method, headers=headers or {}, data=body)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def step(msg):
    print(f"  console: {msg}", flush=True)


def shot(page, name):
    page.screenshot(path=os.path.join(SHOTS, f"console-{name}.png"), full_page=True)


def field(page, form_legend, label):
    return page.get_by_role("form", name=form_legend).get_by_label(label, exact=True)


def submit(page, form_legend, button):
    page.get_by_role("form", name=form_legend).get_by_role("button", name=button).click()


def sign_in(page, user, password):
    page.goto(BASE + "/ui/")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def main():
    violations = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        ctx = browser.new_context(viewport={"width": 1280, "height": 860})
        page = ctx.new_page()
        page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
        page.on("pageerror", lambda e: violations.append(f"page error: {e}"))
        page.on("dialog", lambda d: d.accept())
        try:
            walk(ctx, page)
        except Exception:
            failure = os.environ.get("CONSOLE_FAILURE_SHOT", "target/console-failure.png")
            page.screenshot(path=failure, full_page=True)
            print(f"console: failed; the page is in {failure}; main says:\n{page.locator('main').inner_text()[:2000]}", file=sys.stderr)
            raise
        browser.close()
    assert not violations, "Content-Security-Policy violations or page errors:\n" + "\n".join(violations)
    print("console: every browser check passed")


def walk(ctx, page):

        step("a failed sign-in shows the error")
        sign_in(page, "admin", "not-the-password")
        expect(page.locator("#signin-error")).to_contain_text("invalid credentials")
        expect(page.locator("#console")).to_be_hidden()
        shot(page, "sign-in")

        step("sign in as admin")
        sign_in(page, "admin", ADMIN_PASSWORD)
        expect(page.locator("#who")).to_have_text("admin (admin)")
        cookies = {c["name"]: c for c in ctx.cookies()}
        session_cookie = cookies["gatehouse_session"]
        assert session_cookie["httpOnly"] and session_cookie["sameSite"] == "Strict", session_cookie

        step("create a group, then a user in it")
        page.get_by_role("link", name="Groups", exact=True).click()
        field(page, "Create a group", "Name").fill("readers")
        field(page, "Create a group", "Description").fill("may read libs")
        submit(page, "Create a group", "Create group")
        expect(page.get_by_role("heading", name="Group readers")).to_be_visible()
        page.get_by_role("link", name="Users", exact=True).click()
        field(page, "Create a user", "User name").fill("carol")
        field(page, "Create a user", "Password").fill("Carol-pass-123")
        field(page, "Create a user", "Groups (comma-separated)").fill("readers")
        submit(page, "Create a user", "Create user")
        expect(page.get_by_role("heading", name="User carol")).to_be_visible()
        expect(page.get_by_role("link", name="readers")).to_be_visible()

        step("saving a locked user's profile keeps the lock (it sent status: enabled)")
        status, text = http("POST", "/access/api/v2/users", {**basic("admin", ADMIN_PASSWORD), "Content-Type": "application/json"},
                            json.dumps({"username": "lena", "password": "Lena-pass-123", "email": "lena@example.com"}).encode())
        assert status == 201, (status, text)
        assert http("GET", "/access/api/v2/users/lena", basic("lena", "Lena-pass-123"))[0] == 200
        for _ in range(6):
            http("GET", "/access/api/v2/users/lena", basic("lena", "not-her-password"))
        status, text = http("GET", "/access/api/v2/users/lena", basic("admin", ADMIN_PASSWORD))
        assert json.loads(text)["status"] == "locked", text
        page.goto(BASE + "/ui/#/users/lena")
        expect(page.get_by_role("heading", name="User lena")).to_be_visible()
        field(page, "Profile", "E-mail").fill("lena.new@example.com")
        submit(page, "Profile", "Save")
        expect(page.get_by_role("cell", name="lena.new@example.com")).to_be_visible()
        status, text = http("GET", "/access/api/v2/users/lena", basic("admin", ADMIN_PASSWORD))
        assert json.loads(text)["status"] == "locked", f"saving the e-mail unlocked the user: {text}"
        assert json.loads(text)["email"] == "lena.new@example.com", text

        step("an API error is shown next to the field it names")
        page.get_by_role("link", name="Users", exact=True).click()
        field(page, "Create a user", "User name").fill("dave")
        field(page, "Create a user", "Password").fill("short")
        submit(page, "Create a user", "Create user")
        expect(page.get_by_role("form", name="Create a user").locator('[data-error-for="password"]')).to_contain_text("at least 8")
        page.get_by_role("link", name="Groups", exact=True).click()
        field(page, "Create a group", "Name").fill("readers")
        submit(page, "Create a group", "Create group")
        expect(page.get_by_role("form", name="Create a group").get_by_role("alert")).to_contain_text("already exists")

        step("register a repository")
        page.get_by_role("link", name="Repositories", exact=True).click()
        field(page, "Register a repository", "Key").fill("libs")
        submit(page, "Register a repository", "Register repository")
        expect(page.get_by_role("cell", name="libs", exact=True)).to_be_visible()
        before_grant = int(page.locator("#asof-range").get_attribute("max"))

        step("grant the group read on the repository")
        page.get_by_role("link", name="Permissions", exact=True).click()
        f = "Create a permission target"
        field(page, f, "Name").fill("readers-read")
        field(page, f, "Repositories (comma-separated; ANY, ANY LOCAL, ANY REMOTE)").fill("libs")
        field(page, f, "Group").fill("readers")
        field(page, f, "Group actions").fill("READ")
        submit(page, f, "Create permission target")
        expect(page.get_by_role("heading", name="Permission target readers-read")).to_be_visible()
        shot(page, "permission-target")

        step('"why": the grant decides')
        page.get_by_role("link", name="Why?", exact=True).click()
        field(page, "Question", "Who").select_option("user")
        field(page, "Question", "User name, token or access key (id@org)").fill("carol")
        field(page, "Question", "Resource (repository/path)").fill("libs/org/app/1.0/app.jar")
        submit(page, "Question", "Ask")
        expect(page.locator("#why-answer .answer")).to_contain_text("Yes")
        expect(page.locator("#why-via")).to_contain_text("readers-read")
        shot(page, "why")
        # A pasted token the API refuses is the answer, not the session's end.
        field(page, "Question", "Who").select_option("token")
        field(page, "Question", "User name, token or access key (id@org)").fill("not-a-token")
        submit(page, "Question", "Ask")
        expect(page.locator("#why-answer .answer")).to_contain_text("the token is not accepted")
        expect(page.get_by_role("link", name="Why?", exact=True)).to_be_visible()

        step("the user now holds the grant")
        page.goto(BASE + "/ui/#/users/carol")
        expect(page.get_by_role("cell", name="readers-read")).to_be_visible()
        shot(page, "user")

        step("the time slider: before the grant the user is without it")
        page.locator("#asof-position").fill(str(before_grant))
        page.get_by_role("button", name="Show this moment").click()
        expect(page.locator("#asof-banner")).to_contain_text(f"log position {before_grant}")
        expect(page.locator("body")).to_have_class("is-past")
        expect(page.get_by_role("heading", name="User carol (past, read-only)")).to_be_visible()
        expect(page.get_by_role("cell", name="readers-read")).to_have_count(0)
        expect(page.get_by_role("button", name="Change groups")).to_have_count(0)
        shot(page, "user-past")
        page.get_by_role("link", name="Permissions", exact=True).click()
        expect(page.get_by_role("heading", name="Permission targets (past, read-only)")).to_be_visible()
        expect(page.get_by_role("link", name="readers-read")).to_have_count(0)
        # The keys of that moment, read-only: no trust form, no rotation.
        page.get_by_role("link", name="Signing keys", exact=True).click()
        expect(page.get_by_role("heading", name="Token-signing keys then")).to_be_visible()
        expect(page.locator("main code").first).to_have_text(lambda_kid())
        expect(page.get_by_role("heading", name="Trusted peers (circle of trust) then")).to_be_visible()
        expect(page.get_by_role("form", name="Trust a peer’s key")).to_have_count(0)
        expect(page.get_by_role("button", name="Rotate the signing key")).to_have_count(0)
        # Signing a checkpoint is a write: not offered in the past either.
        page.get_by_role("link", name="Integrity", exact=True).click()
        expect(page.get_by_role("button", name="Verify the whole chain now")).to_be_visible()
        expect(page.get_by_role("button", name="Sign a checkpoint now")).to_have_count(0)

        step('"why" in the past says no')
        page.get_by_role("link", name="Why?", exact=True).click()
        field(page, "Question", "Who").select_option("user")
        field(page, "Question", "User name, token or access key (id@org)").fill("carol")
        field(page, "Question", "Resource (repository/path)").fill("libs/org/app/1.0/app.jar")
        submit(page, "Question", "Ask")
        expect(page.locator("#why-answer .answer")).to_contain_text("No")
        shot(page, "why-past")
        page.get_by_role("button", name="Back to now").click()
        expect(page.locator("body")).not_to_have_class("is-past")

        step("a moment still to come is the present, not the past")
        page.locator("#asof-time").fill("2999-01-01T00:00")
        page.get_by_role("button", name="Show this moment").click()
        expect(page.locator("#asof-banner")).to_contain_text("Now: log position")
        expect(page.locator("body")).not_to_have_class("is-past")
        expect(page.get_by_role("form", name="Question")).to_be_visible()
        page.goto(BASE + "/ui/#/users/carol?as_of=2999-01-01T00%3A00%3A00.000Z")
        expect(page.get_by_role("heading", name="User carol", exact=True)).to_be_visible()
        expect(page.locator("body")).not_to_have_class("is-past")

        step("timeline, diff, integrity")
        page.get_by_role("link", name="Timeline", exact=True).click()
        field(page, "Filters", "Entity (user, group, token id, …)").fill("carol")
        submit(page, "Filters", "Show events")
        expect(page.get_by_role("cell", name="UserCreated")).to_have_count(1)
        expect(page.get_by_role("cell", name="carol", exact=True)).to_have_count(1)
        shot(page, "timeline")
        # "Before #N" opens the page of the event's kind just before it (position N-1).
        row = page.get_by_role("row").filter(has=page.get_by_role("cell", name="UserCreated"))
        pos = int(row.get_by_role("cell").first.inner_text())
        row.get_by_role("button", name=f"Before #{pos}", exact=True).click()
        expect(page.locator("body")).to_have_class("is-past")
        assert f"as_of={pos - 1}" in page.url, page.url
        expect(page.get_by_role("cell", name="carol", exact=True)).to_have_count(0)
        page.get_by_role("button", name="Back to now").click()
        expect(page.locator("body")).not_to_have_class("is-past")
        # Before the first event is the empty state, position 0 (it opened position 1).
        page.get_by_role("link", name="Timeline", exact=True).click()
        field(page, "Filters", "From position").fill("1")
        field(page, "Filters", "Per page").fill("1")
        submit(page, "Filters", "Show events")
        page.get_by_role("button", name="Before #1", exact=True).click()
        expect(page.locator("body")).to_have_class("is-past")
        assert "as_of=0" in page.url, page.url
        page.get_by_role("button", name="Back to now").click()
        expect(page.locator("body")).not_to_have_class("is-past")
        # An event of a kind without a list of its own opens the page that shows it: a
        # global role's, Projects (it opened Users).
        status, text = http("POST", "/access/api/v1/roles", {**basic("admin", ADMIN_PASSWORD), "Content-Type": "application/json"},
                            json.dumps({"name": "console-auditor", "type": "CUSTOM_GLOBAL", "environments": ["DEV"],
                                        "actions": ["READ_REPOSITORY"]}).encode())
        assert status == 201, (status, text)
        # A write after it: "After #N" of the newest event would be the present.
        status, text = http("POST", "/access/api/v2/groups", {**basic("admin", ADMIN_PASSWORD), "Content-Type": "application/json"},
                            json.dumps({"name": "console-after-role"}).encode())
        assert status == 201, (status, text)
        page.get_by_role("link", name="Timeline", exact=True).click()
        field(page, "Filters", "Event types (comma-separated)").fill("GlobalRoleSaved")
        submit(page, "Filters", "Show events")
        row = page.get_by_role("row").filter(has=page.get_by_role("cell", name="GlobalRoleSaved"))
        pos = int(row.get_by_role("cell").first.inner_text())
        row.get_by_role("button", name=f"After #{pos}", exact=True).click()
        expect(page.locator("body")).to_have_class("is-past")
        assert f"#/projects" in page.url and f"as_of={pos}" in page.url, page.url
        page.get_by_role("button", name="Back to now").click()
        expect(page.locator("body")).not_to_have_class("is-past")
        # The head, or a position after it, is the present (it was "the past, read-only",
        # and after the head an error under that title).
        page.goto(BASE + f"/ui/#/groups?as_of={pos + 1}")
        expect(page.get_by_role("cell", name="console-after-role", exact=True)).to_have_count(1)
        expect(page.locator("body")).not_to_have_class("is-past")
        page.goto(BASE + "/ui/#/groups?as_of=99999999")
        expect(page.get_by_role("cell", name="console-after-role", exact=True)).to_have_count(1)
        expect(page.locator("body")).not_to_have_class("is-past")
        # The timeline opens at the newest events: the group just made is on its page.
        page.get_by_role("link", name="Timeline", exact=True).click()
        expect(page.get_by_role("cell", name="GroupCreated").last).to_be_visible()
        expect(page.get_by_role("cell", name="console-after-role", exact=True)).to_have_count(1)
        page.get_by_role("link", name="Diff", exact=True).click()
        field(page, "Moments", "From (position or RFC 3339 time)").fill(str(before_grant))
        submit(page, "Moments", "Compare")
        expect(page.get_by_role("cell", name="readers-read")).to_be_visible()
        page.get_by_role("link", name="Integrity", exact=True).click()
        expect(page.locator("#head-hash")).to_have_text(lambda_hex())
        page.get_by_role("button", name="Verify the whole chain now").click()
        expect(page.locator("#verify-result")).to_contain_text("Intact")
        expect(page.get_by_role("button", name="Sign a checkpoint now")).to_be_visible()
        shot(page, "integrity")

        step("a permission target's other resources: build targets and a build grant")
        page.get_by_role("link", name="Permissions", exact=True).click()
        f = "Create a permission target"
        field(page, f, "Name").fill("ci-builds")
        field(page, f, "Repositories (comma-separated; ANY, ANY LOCAL, ANY REMOTE)").fill("libs")
        submit(page, f, "Create permission target")
        expect(page.get_by_role("heading", name="Permission target ci-builds")).to_be_visible()
        f = "Targets of ci-builds"
        field(page, f, "Resource").select_option("build")
        field(page, f, "Repositories (comma-separated; ANY, ANY LOCAL, ANY REMOTE; for build: artifactory-build-info)").fill("artifactory-build-info")
        field(page, f, "Include patterns").fill("app/**")
        submit(page, f, "Set targets")
        expect(page.get_by_role("heading", name="build resources")).to_be_visible()
        expect(page.get_by_role("cell", name="app/**")).to_be_visible()
        f = "Grant on ci-builds"
        field(page, f, "Resource").select_option("build")
        field(page, f, "Name").fill("readers")
        field(page, f, "Actions (comma-separated; empty removes the grant)").fill("READ, WRITE")
        submit(page, f, "Set grant")
        expect(page.get_by_role("row").filter(has_text="readers").filter(has_text="WRITE")).to_have_count(1)
        status, body = http("GET", "/access/api/v2/permissions/ci-builds", basic("admin", ADMIN_PASSWORD))
        assert status == 200, status
        build = json.loads(body)["resources"]["build"]
        assert build["targets"]["artifactory-build-info"]["include_patterns"] == ["app/**"], build
        assert sorted(build["actions"]["groups"]["readers"]) == ["READ", "WRITE"], build

        step("projects, access keys and entitlements, webhooks, federation, keys")
        page.get_by_role("link", name="Projects", exact=True).click()
        field(page, "Create a project", "Key").fill("web")
        field(page, "Create a project", "Display name").fill("Web")
        submit(page, "Create a project", "Create project")
        expect(page.get_by_role("heading", name="Project Web (web)")).to_be_visible()
        field(page, "Set a member’s roles", "Name").fill("carol")
        submit(page, "Set a member’s roles", "Save member")
        expect(page.get_by_role("row").filter(has_text="carol")).to_contain_text("Developer")
        f = "Create or change a custom role"
        field(page, f, "Role name").fill("Auditor")
        field(page, f, "Environments (comma-separated, e.g. DEV, PROD)").fill("DEV, PROD")
        field(page, f, "Actions (comma-separated, e.g. READ_REPOSITORY, ANNOTATE_REPOSITORY)").fill("READ_REPOSITORY")
        submit(page, f, "Save role")
        expect(page.get_by_role("row").filter(has_text="Auditor")).to_contain_text("CUSTOM")
        field(page, f, "Role name").fill("Auditor")
        field(page, f, "Environments (comma-separated, e.g. DEV, PROD)").fill("PROD")
        submit(page, f, "Save role")
        expect(page.get_by_role("row").filter(has_text="Auditor")).not_to_contain_text("DEV")
        page.get_by_role("button", name="Delete role Auditor").click()
        expect(page.get_by_role("row").filter(has_text="Auditor")).to_have_count(0)
        field(page, "Attach a repository", "Repository key").fill("libs")
        submit(page, "Attach a repository", "Attach")
        expect(page.get_by_role("row").filter(has_text="owned")).to_contain_text("libs")
        page.get_by_role("link", name="Access keys", exact=True).click()
        field(page, "Organisation", "Organisation").fill("acme")
        submit(page, "Organisation", "Show")
        expect(page.get_by_role("heading", name="Access keys of acme")).to_be_visible()
        field(page, "Create an access key", "Id").fill("k1")
        submit(page, "Create an access key", "Create access key")
        expect(page.locator(".secret")).not_to_be_empty()
        field(page, "Create an access key", "Id").fill("k2")
        field(page, "Create an access key", "Allowed networks (comma-separated CIDRs, optional)").fill("10.0.0.0/8")
        submit(page, "Create an access key", "Create access key")
        expect(page.get_by_text("Access key k2@acme created")).to_be_visible()
        submit(page, "Organisation", "Show")
        expect(page.get_by_role("row").filter(has_text="k2")).to_contain_text("10.0.0.0/8")
        f = "Create an entitlement"
        field(page, f, "Repository").fill("libs")
        field(page, f, "Access keys (comma-separated ids)").fill("k1")
        submit(page, f, "Create entitlement")
        expect(page.get_by_role("row").filter(has_text="k1").filter(has_text="(whole repository)")).to_have_count(1)
        page.get_by_role("link", name="Why?", exact=True).click()
        field(page, "Question", "Who").select_option("access key")
        field(page, "Question", "User name, token or access key (id@org)").fill("k1@acme")
        field(page, "Question", "Resource (repository/path)").fill("libs/pkg/1.0/a.tgz")
        submit(page, "Question", "Ask")
        expect(page.locator("#why-answer .answer")).to_contain_text("Yes")
        page.get_by_role("link", name="Webhooks", exact=True).click()
        f = "Create a subscription"
        field(page, f, "Key").fill("hook1")
        field(page, f, "Webhook URL").fill("http://127.0.0.1:9/hook")
        submit(page, f, "Create subscription")
        expect(page.get_by_role("heading", name="Deliveries of hook1 (now)")).to_be_visible()
        expect(page.get_by_role("heading", name="Dead letters")).to_be_visible()
        # A delivery to a closed port fails; with webhook-max-attempts = 1 (console.sh)
        # it is a dead letter at once, and the page re-drives it.
        status, text = http("POST", "/access/api/v2/users", {**basic("admin", ADMIN_PASSWORD), "Content-Type": "application/json"},
                            json.dumps({"username": "hooked", "password": "Hooked-pass-123"}).encode())
        assert status == 201, text
        redrive = page.get_by_role("button", name="Re-drive all dead letters")
        for _ in range(60):
            page.reload()
            page.get_by_role("heading", name="Dead letters").wait_for()
            if redrive.count():
                break
            page.wait_for_timeout(250)
        expect(page.get_by_role("row").filter(has_text="hooked")).to_have_count(1)
        shot(page, "webhooks")
        redrive.click()
        expect(page.get_by_role("heading", name="Deliveries of hook1 (now)")).to_be_visible()
        # Re-driven: delivered (and failed) once more.
        for _ in range(60):
            _, text = http("GET", "/event/api/v1/subscriptions/hook1/deliveries", basic("admin", ADMIN_PASSWORD))
            if len(json.loads(text)["attempts"]) >= 2:
                break
            page.wait_for_timeout(250)
        else:
            raise AssertionError(f"the re-drive did not deliver again: {text}")
        page.get_by_role("link", name="Federation", exact=True).click()
        expect(page.get_by_role("heading", name="Federation targets")).to_be_visible()
        expect(page.get_by_role("form", name="Register a target")).to_be_visible()
        page.get_by_role("link", name="Signing keys", exact=True).click()
        expect(page.get_by_role("heading", name="Trusted peers (circle of trust, now)")).to_be_visible()
        expect(page.locator("main code").first).to_have_text(lambda_kid())

        step("create a token (shown once) and revoke it")
        page.get_by_role("link", name="Tokens", exact=True).click()
        field(page, "Create a token", "For user").fill("carol")
        field(page, "Create a token", "Description").fill("browser-test")
        submit(page, "Create a token", "Create token")
        token = page.locator("#new-token").inner_text().strip()
        assert token.count(".") == 2, token
        status, _ = http("GET", "/access/api/v2/users/carol", {"Authorization": f"Bearer {token}"})
        assert status == 200, status
        page.get_by_role("button", name="Done: hide it and show the list").click()
        expect(page.locator("#new-token")).to_have_count(0)
        row = page.get_by_role("row").filter(has_text="browser-test")
        expect(row).to_have_count(1)
        shot(page, "tokens")
        row.get_by_role("button", name="Revoke").click()
        expect(page.get_by_role("row").filter(has_text="browser-test")).to_have_count(0)
        status, _ = http("GET", "/access/api/v2/users/carol", {"Authorization": f"Bearer {token}"})
        assert status == 401, f"a revoked token still works: {status}"

        step("a long list pages: the first 500 and Show more (it stopped at the first page)")
        for i in range(505):
            status, text = http("POST", "/access/api/v2/groups",
                                {**basic("admin", ADMIN_PASSWORD), "Content-Type": "application/json"},
                                json.dumps({"name": f"zz-many-{i:04d}"}).encode())
            assert status == 201, (status, text)
        page.get_by_role("link", name="Groups", exact=True).click()
        expect(page.get_by_role("button", name="Show more")).to_be_visible()
        expect(page.get_by_role("link", name="zz-many-0504")).to_have_count(0)
        page.get_by_role("button", name="Show more").click()
        expect(page.get_by_role("link", name="zz-many-0504")).to_be_visible()
        expect(page.get_by_role("button", name="Show more")).to_have_count(0)

        step("narrow window")
        page.set_viewport_size({"width": 390, "height": 800})
        page.get_by_role("link", name="Users", exact=True).click()
        expect(page.get_by_role("cell", name="carol")).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 400, f"the users page scrolls sideways on a narrow window ({width}px)"
        shot(page, "narrow")
        page.set_viewport_size({"width": 1280, "height": 860})

        step("sign out: the session is gone on the server")
        csrf = page.evaluate("fetch('/ui/session').then(r => r.json()).then(j => j.csrf)")
        cookie = f"gatehouse_session={session_cookie['value']}"
        status, _ = http("GET", "/access/api/v2/users", {"Cookie": cookie, "X-CSRF-Token": csrf})
        assert status == 200, status
        page.get_by_role("button", name="Sign out").click()
        expect(page.locator("#signin")).to_be_visible()
        # Nothing of the last user stays in the page (its pages, its navigation, its address).
        expect(page.locator("#main")).to_be_empty()
        expect(page.locator("#nav")).to_be_empty()
        assert page.evaluate("location.hash") == "", page.evaluate("location.hash")
        status, _ = http("GET", "/access/api/v2/users", {"Cookie": cookie, "X-CSRF-Token": csrf})
        assert status == 401, f"the session still works after sign-out: {status}"
        status, _ = http("GET", "/ui/session", {"Cookie": cookie})
        assert status == 401, status

        step("a non-admin sees only what the API lets it see")
        sign_in(page, "carol", "Carol-pass-123")
        expect(page.locator("#who")).to_have_text("carol")
        nav = page.locator("#nav")
        for admin_page in ["Users", "Groups", "Permissions", "Timeline", "Integrity"]:
            expect(nav.get_by_role("link", name=admin_page, exact=True)).to_have_count(0)
        expect(page.get_by_role("heading", name="User carol")).to_be_visible()
        shot(page, "non-admin")
        for route in ["users", "groups", "integrity", "timeline"]:
            page.goto(BASE + f"/ui/#/{route}")
            expect(page.locator("main").get_by_text("Not allowed:")).to_be_visible()
        page.get_by_role("link", name="Why?", exact=True).click()
        field(page, "Question", "Resource (repository/path)").fill("libs/x")
        submit(page, "Question", "Ask")
        expect(page.locator("#why-via")).to_contain_text("readers-read")

        step("a hash that does not decode names no page (no uncaught error)")
        page.goto(BASE + "/ui/#/%E0%A4%A")
        expect(page.locator("main")).to_contain_text("No page")

        step("an expired password: the console offers changing it, and only that")
        page.get_by_role("button", name="Sign out").click()
        expect(page.locator("#signin")).to_be_visible()
        status, text = http("POST", "/artifactory/api/security/users/authorization/expirePassword/carol",
                            basic("admin", ADMIN_PASSWORD))
        assert status == 200, (status, text)
        sign_in(page, "carol", "Carol-pass-123")
        expect(page.get_by_role("heading", name="Your password has expired")).to_be_visible()
        expect(page.locator("#nav")).to_be_hidden()
        expect(page.locator("#time")).to_be_hidden()
        f = "Change my expired password"
        field(page, f, "New password").fill("Carol-new-pass-456")
        field(page, f, "New password again").fill("Carol-new-pass-457")
        submit(page, f, "Change password")
        expect(page.get_by_role("form", name=f).locator('[data-error-for="confirm"]')).to_contain_text("differ")
        field(page, f, "New password again").fill("Carol-new-pass-456")
        submit(page, f, "Change password")
        expect(page.locator("#signin-error")).to_contain_text("Sign in with the new one")
        shot(page, "expired-password")
        status, _ = http("GET", "/access/api/v2/users/carol", basic("carol", "Carol-new-pass-456"))
        assert status == 200, f"the new password does not work: {status}"
        sign_in(page, "carol", "Carol-new-pass-456")
        expect(page.get_by_role("heading", name="User carol")).to_be_visible()
        expect(page.locator("#nav")).to_be_visible()

        step("changing one's own password ends the session, and the sign-in page says so")
        field(page, "Change my password", "New password").fill("Carol-third-pass-789")
        submit(page, "Change my password", "Change password")
        expect(page.locator("#signin-error")).to_contain_text("Your password is changed")
        expect(page.locator("#main")).to_be_empty()

        step("a form sent after the session ended leads to the sign-in page")
        sign_in(page, "carol", "Carol-third-pass-789")
        expect(page.get_by_role("heading", name="User carol")).to_be_visible()
        path = "/access/api/v1/config/security/authentication/basic_authentication_enabled"
        headers = {**basic("admin", ADMIN_PASSWORD), "Content-Type": "application/json"}
        assert http("PUT", path, headers, b'{"enabled": false}')[0] == 200
        try:
            field(page, "Change my password", "New password").fill("Carol-fourth-pass-012")
            submit(page, "Change my password", "Change password")
            expect(page.locator("#signin-error")).to_contain_text("Your session has ended")
        finally:
            assert http("PUT", path, headers, b'{"enabled": true}')[0] == 200



def lambda_kid():
    import re
    return re.compile(r"^[0-9a-f]{16}$")


def lambda_hex():
    import re
    return re.compile(r"^[0-9a-f]{64}$")


if __name__ == "__main__":
    main()
