// Drives the console in headless Debian Chromium as a person would, by labels and button
// names: signs in with the admin token, creates an organization, an IAM v2 policy with an
// ALLOW statement and a member, asks Check so a recent decision exists, adds a DENY statement
// and simulates it before saving (expecting "Would newly deny"), saves, finds the change in
// the policy's history, visits every page, makes a token with no policy on the Tokens page
// (its secret shown once), then signs in with that token and expects the permission message.
// The console reads each control's permission from the proto options embedded in its bundle
// (`google.api.http` for the path, `(iamd.method)` for the action): the administrator sees
// no control refused, and the token with no policy sees the proto's actions named.
//
//   CONSOLE_URL=http://127.0.0.1:8080 CONSOLE_TOKEN=dev-token node test/console.mjs
//
// Writes a screenshot of every page it visits into CONSOLE_SCREENSHOTS (default
// ../target/console-screenshots). Every step runs even when an earlier expectation failed
// (unless it depends on it); the script prints each failure and exits 1 if there was any,
// with any browser console error, page error or CSP violation counted as a failure.
import { mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const base = process.env.CONSOLE_URL;
const adminToken = process.env.CONSOLE_TOKEN;
const timeout = Number(process.env.CONSOLE_TEST_TIMEOUT_MS ?? 15000);
const shots = process.env.CONSOLE_SCREENSHOTS ?? fileURLToPath(new URL("../../target/console-screenshots/", import.meta.url));
const run = process.env.CONSOLE_RUN_ID ?? `${Date.now()}`;
if (!base || !adminToken) {
  console.error("usage: CONSOLE_URL=http://host:port CONSOLE_TOKEN=<admin token> node test/console.mjs");
  process.exit(2);
}

const failures = [];
const expect = (ok, what) => {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures.push(what);
  return ok;
};

await mkdir(shots, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  headless: true,
  timeout,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
const page = await context.newPage();
page.setDefaultTimeout(timeout);
const consoleErrors = [];
page.on("console", (m) => {
  if (m.type() === "error") consoleErrors.push(m.text());
});
page.on("pageerror", (e) => consoleErrors.push(`page error: ${e.stack ?? e}`));

let shot = 0;
async function screenshot(name) {
  shot += 1;
  const file = `${shots}/${String(shot).padStart(2, "0")}-${name}.png`;
  await page.screenshot({ path: file, fullPage: true });
}
const heading = (text) => page.getByRole("heading", { level: 1, name: text });
const alertText = async () => ((await page.locator("#alert").isVisible()) ? await page.locator("#alert").innerText() : "");
async function signIn(token) {
  await page.goto(`${base}/console/#/signin`);
  await heading("Sign in").waitFor();
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await heading("Organizations").waitFor();
}
async function visit(hash, title, name) {
  await page.goto(`${base}/console/${hash}`);
  await heading(title).waitFor();
  // Lists load after the heading: wait until none says "Loading…".
  await page.waitForFunction(() => !document.querySelector("main")?.textContent?.includes("Loading…"));
  await screenshot(name);
  await noneRefused(name);
}
// The administrator may do everything: a refused control means a path or verb read from the
// proto that introspection did not recognize.
async function noneRefused(name) {
  const notes = await page.locator(".denied-note").allInnerTexts();
  expect(notes.length === 0, `the administrator is refused nothing on ${name}: ${JSON.stringify(notes)}`);
}

const orgName = `Console org ${run}`;
const policyId = `console-${run}`;
const alice = `user:local:alice-${run}`;
const nobody = `nobody-${run}`;
let nobodySecret = "";

try {
  // The console answers with its Content-Security-Policy.
  const first = await page.goto(`${base}/console/`);
  const csp = first?.headers()["content-security-policy"] ?? "";
  expect(csp.includes("frame-ancestors 'none'") && csp.includes("script-src 'self'"), `CSP header present: ${csp}`);
  expect(first?.headers()["x-frame-options"] === "DENY", "x-frame-options: DENY");
  await heading("Sign in").waitFor();
  await screenshot("sign-in");

  // 1. Sign in as the administrator; an organization.
  await signIn(adminToken);
  expect((await page.evaluate(() => document.cookie)) === "", "no cookie after sign-in");
  expect((await page.evaluate(() => sessionStorage.length)) === 1, "the token is in session storage");
  await screenshot("organizations");
  await page.getByLabel("Name").fill(orgName);
  await page.getByLabel("Domain (optional)").fill(`org-${run}.example`);
  await page.getByRole("button", { name: "Create organization" }).click();
  await heading(`Organization ${orgName}`).waitFor();
  await page.getByText("Give it its own settings").or(page.getByText("Save settings")).waitFor();
  await screenshot("organization");
  await noneRefused("organization");
  const orgUrl = page.url();

  // 2. An IAM v2 policy with an ALLOW statement and a member.
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "IAM policies" }).click();
  await heading("IAM policies").waitFor();
  await screenshot("iam-policies");
  await page.getByRole("link", { name: "New policy" }).click();
  await heading("New IAM policy").waitFor();
  await page.getByLabel("Id", { exact: true }).fill(policyId);
  await page.getByLabel("Name", { exact: true }).fill(`Console policy ${run}`);
  const statement1 = page.getByRole("group", { name: "Statement 1" });
  await statement1.getByLabel("Actions").fill("iam:users:get");
  await page.getByLabel("Add to members").fill(alice);
  await page.getByRole("button", { name: "Add", exact: true }).click();
  expect(await page.getByRole("button", { name: `Remove ${alice}` }).isVisible(), "the member is listed before saving");
  await screenshot("iam-policy-new");
  await page.getByRole("button", { name: "Create policy" }).click();
  await heading(`IAM policy ${policyId}`).waitFor();
  expect((await alertText()) === "", `no error after creating the policy: ${await alertText()}`);

  // 3. A decision for the member, so the simulation has a recent decision to turn around.
  await page.getByRole("link", { name: "Check & Explain" }).click();
  await heading("Check & Explain").waitFor();
  await page.getByLabel("Subject").fill(alice);
  await page.getByLabel("Action").fill("iam:users:get");
  await page.getByLabel("Resource", { exact: true }).fill("iam:users:bob");
  await page.getByRole("button", { name: "Check", exact: true }).click();
  await page.getByText("Decision: ALLOW").waitFor();
  await page.getByRole("button", { name: "Explain" }).click();
  await page.getByRole("heading", { name: "Every statement that matched" }).waitFor();
  expect(await page.getByRole("link", { name: policyId }).first().isVisible(), "Explain names the policy behind the decision");
  await screenshot("check-explain");

  // 4. An unsaved DENY, simulated before it is saved.
  await page.goto(`${base}/console/#/iam/policies/${policyId}`);
  await heading(`IAM policy ${policyId}`).waitFor();
  await page.getByRole("button", { name: "Add statement" }).click();
  const statement2 = page.getByRole("group", { name: "Statement 2" });
  await statement2.getByLabel("Effect").selectOption("DENY");
  await statement2.getByLabel("Actions").fill("iam:users:get");
  await page.getByRole("button", { name: "Simulate", exact: true }).click();
  const panel = page.locator(".simulation");
  await panel.locator(".summary, .error").first().waitFor();
  const simulated = await panel.innerText();
  await screenshot("iam-policy-simulated");
  const deny = panel.locator(".outcome.deny");
  const sawDeny =
    (await deny.count()) > 0 &&
    (await deny.getByRole("heading").innerText()).startsWith("Would newly deny (") &&
    (await deny.getByRole("listitem").filter({ hasText: alice }).count()) > 0;
  expect(sawDeny, `the simulation lists ${alice} under "Would newly deny": ${simulated.replace(/\s+/g, " ")}`);

  // 5. Save, then find the change in the policy's history.
  await page.getByRole("button", { name: "Save policy" }).click();
  await page.locator("#notice", { hasText: "Saved." }).waitFor();
  expect((await alertText()) === "", `no error after saving: ${await alertText()}`);
  await page.getByRole("link", { name: "History of this policy" }).click();
  await heading(`History of iam_policy ${policyId}`).waitFor();
  await page.getByRole("cell", { name: "iam.policy.changed" }).first().waitFor();
  const changedRow = page.getByRole("row").filter({ hasText: "iam.policy.changed" });
  expect((await changedRow.count()) >= 1, "the history lists iam.policy.changed");
  expect((await changedRow.first().textContent())?.includes("DENY") ?? false, "the change's payload holds the DENY statement");
  await screenshot("iam-policy-history");

  // 6. Every other page, once.
  const orgId = decodeURIComponent(orgUrl.split("#/orgs/")[1] ?? "");
  await visit(`#/orgs/${orgId}/policies`, `Policies of ${orgName}`, "org-policies");
  await visit(`#/orgs/${orgId}/roles`, `Roles of ${orgName}`, "org-roles");
  await visit(`#/orgs/${orgId}/assignments`, `Assignments of ${orgName}`, "org-assignments");
  await visit("#/iam/roles", "IAM roles", "iam-roles");
  await visit("#/iam/tenants", "Tenants", "tenants");
  await visit("#/iam/users", "Users", "users");
  await visit("#/iam/teams", "Teams", "teams");
  await visit("#/history", "History of the instance", "history");

  // 7. A token with no policy, made on the Tokens page: its secret is shown once.
  await visit("#/iam/tokens", "Tokens", "tokens");
  const newToken = page.getByRole("region", { name: "New token" });
  await newToken.getByLabel("Id").fill(nobody);
  await newToken.getByLabel("Name").fill(`No permissions ${run}`);
  await newToken.getByRole("button", { name: "Create token" }).click();
  await page.locator(".secret-value").waitFor();
  nobodySecret = (await page.locator(".secret-value").innerText()).trim();
  expect(nobodySecret.length > 10, "the new token's secret is shown");
  await page.getByRole("button", { name: "Copy the secret" }).click();
  await page.getByText(/Copied\.|Selected/).waitFor();
  await screenshot("token-created");
  await page.getByRole("button", { name: "Sign out" }).click();
  await heading("Sign in").waitFor();
  expect((await page.evaluate(() => sessionStorage.length)) === 0, "sign out clears session storage");
} catch (error) {
  expect(false, `the admin run stopped: ${error?.stack ?? error}`);
  await screenshot("admin-failure").catch(() => {});
}

// 8. The second run: the token with no policy sees what it may not do.
if (nobodySecret) {
  try {
    await signIn(nobodySecret);
    await page.locator("#alert").waitFor();
    const text = await alertText();
    expect(
      text.includes("Permission denied") && text.includes(`token:${nobody}`) && text.includes("accounts:organizations:list"),
      `the organizations page says which permission is missing: ${text}`,
    );
    const create = page.getByRole("button", { name: "Create organization" });
    expect((await create.getAttribute("aria-disabled")) === "true", "Create organization is aria-disabled");
    expect(await page.getByText("accounts:organizations:create").isVisible(), "the note names accounts:organizations:create");
    const nav = await page.getByRole("navigation", { name: "Main" }).innerText();
    for (const action of ["iam:policies:list", "iam:tokens:list", "history:events:list", "authz:decisions:check"]) {
      expect(nav.includes(action), `the main navigation names ${action}, read from the proto: ${nav.replace(/\s+/g, " ")}`);
    }
    await screenshot("unprivileged-organizations");
    await page.goto(`${base}/console/#/iam/policies`);
    await heading("IAM policies").waitFor();
    await page.locator("#alert").waitFor();
    expect((await alertText()).includes("iam:policies:list"), `the IAM policies page names iam:policies:list: ${await alertText()}`);
    await screenshot("unprivileged-iam-policies");
  } catch (error) {
    expect(false, `the unprivileged run stopped: ${error?.stack ?? error}`);
    await screenshot("unprivileged-failure").catch(() => {});
  }
} else {
  expect(false, "no unprivileged token to sign in with");
}

expect(consoleErrors.length === 0, `no browser console errors: ${JSON.stringify(consoleErrors)}`);
await browser.close();
console.log(`screenshots in ${shots}`);
if (failures.length > 0) {
  console.error(`${failures.length} expectation(s) failed:\n- ${failures.join("\n- ")}`);
  process.exit(1);
}
console.log("console test passed");
