// The console's entry: the routes of every page, the main navigation (each link marked when
// the caller may not open it, by introspection), sign-in and sign-out, and a last net that
// turns any uncaught failure into a readable message.
import { api, introspect, session } from "./api";
import { assignmentRoutes } from "./assignments";
import { checkNav, checkRoutes } from "./check";
import { historyNav, historyRoutes } from "./history";
import { iamPoliciesNav, iamPolicyRoutes } from "./iam_policies";
import { iamRoleRoutes, iamRolesNav } from "./iam_roles";
import { orgPolicyRoutes } from "./org_policies";
import { orgRoleRoutes } from "./org_roles";
import { orgRoutes, orgsNav } from "./orgs";
import { go, render, segments, type Route } from "./router";
import { teamRoutes, teamsNav } from "./teams";
import { tenantRoutes, tenantsNav } from "./tenants";
import { tokenRoutes, tokensNav } from "./tokens";
import { userRoutes, usersNav } from "./users";
import { button, deny, field, form, h, input, page, showError, showNotice } from "./ui";

const NAV = [orgsNav, iamPoliciesNav, iamRolesNav, tenantsNav, usersNav, teamsNav, tokensNav, historyNav, checkNav];

async function signInPage(): Promise<void> {
  const token = input("", { type: "password", required: true, autocomplete: "off" });
  page(
    "Sign in",
    h("p", {}, "Sign in with an iamd API token. It is kept in this tab's session storage until you sign out or close the tab."),
    form(
      async () => {
        const value = token.value.trim();
        if (!value) {
          throw new Error("Enter an API token.");
        }
        session.signIn(value);
        try {
          // Every caller may introspect: this call only proves the token is accepted.
          await api.introspection.introspect({ paths: [orgsNav.permission.path] });
        } catch (error) {
          session.signOut();
          throw error;
        }
        showNotice("Signed in.");
        go("#/orgs");
      },
      field("API token", token, "The bootstrap administrator's token, or one made on the Tokens page."),
      button("Sign in", () => {}, { submit: true, kind: "primary" }),
    ),
  );
  token.focus();
}

const ROUTES: Route[] = [
  { pattern: "signin", render: signInPage },
  ...orgRoutes,
  ...orgPolicyRoutes,
  ...orgRoleRoutes,
  ...assignmentRoutes,
  ...iamPolicyRoutes,
  ...iamRoleRoutes,
  ...tenantRoutes,
  ...userRoutes,
  ...teamRoutes,
  ...tokenRoutes,
  ...historyRoutes,
  ...checkRoutes,
];

async function drawHeader(): Promise<void> {
  const nav = document.getElementById("nav");
  const account = document.getElementById("account");
  if (!nav || !account) {
    return;
  }
  if (!session.token()) {
    nav.replaceChildren();
    account.replaceChildren();
    return;
  }
  account.replaceChildren(
    button("Sign out", () => {
      session.signOut();
      showNotice("Signed out.");
      go("#/signin");
    }),
  );
  let may = (_: (typeof NAV)[number]["permission"]) => true;
  try {
    may = await introspect(NAV.map((n) => n.permission));
  } catch (error) {
    showError(error);
  }
  nav.replaceChildren(
    h(
      "ul",
      {},
      ...NAV.map((n) => {
        const a = h("a", { href: n.href, "aria-current": isCurrent(n.href) ? "page" : false }, n.label);
        if (may(n.permission)) {
          return h("li", {}, a);
        }
        a.addEventListener("click", (event) => event.preventDefault());
        return h("li", {}, deny(a, n.permission));
      }),
    ),
  );
}

/** Whether the hash is the page of `href` or one below it. */
function isCurrent(href: string): boolean {
  return location.hash === href || location.hash.startsWith(`${href}/`);
}

async function show(): Promise<void> {
  const parts = segments();
  if (!session.token() && parts[0] !== "signin") {
    go("#/signin");
    return;
  }
  if (parts.length === 0) {
    go("#/orgs");
    return;
  }
  await drawHeader();
  await render(ROUTES);
}

window.addEventListener("hashchange", () => void show());
window.addEventListener("unhandledrejection", (event) => showError(event.reason));
window.addEventListener("error", (event) => showError(event.error ?? event.message));
document.getElementById("skip")?.addEventListener("click", (event) => {
  event.preventDefault();
  document.querySelector<HTMLElement>("main h1")?.focus();
});
void show();
