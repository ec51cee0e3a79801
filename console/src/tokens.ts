// API tokens: the list, create (the new secret shown once, with a copy button), and one
// token's page (rename, tenants, active, delete).
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { api, introspect, permission } from "./api";
import { type Token, TokenService } from "./gen/iamd/iam/v2/identity_pb";
import { allAtOnce, pagedList } from "./list";
import { go, type Route } from "./router";
import {
  button,
  checkbox,
  confirmButton,
  field,
  form,
  h,
  input,
  joinList,
  link,
  page,
  route,
  section,
  showNotice,
  splitList,
  time,
} from "./ui";

const LIST = permission(TokenService.method.listTokens);
const CREATE = permission(TokenService.method.createToken);
export const tokensNav = { href: "#/iam/tokens", label: "Tokens", permission: LIST };

async function list(): Promise<void> {
  const may = await introspect([CREATE]);
  const tokens = pagedList<Token>({
    label: "API tokens, without their secrets",
    columns: [
      { label: "Id", cell: (t) => link(route("iam", "tokens", t.id), t.id) },
      { label: "Name", cell: (t) => t.name },
      { label: "Active", cell: (t) => (t.active ? "yes" : "no") },
      { label: "Acts as", cell: (t) => (t.userId ? `user:local:${t.userId}` : `token:${t.id}`) },
      { label: "Tenants", cell: (t) => joinList(t.tenants) },
      { label: "Created", cell: (t) => time(t.createdAt) },
      { label: "Expires", cell: (t) => time(t.expiresAt) || "never" },
    ],
    fetch: allAtOnce(async () => (await api.tokens.listTokens({})).tokens),
  });
  const id = input("", { required: true, pattern: "[A-Za-z0-9_-]{1,64}" });
  const name = input("", { required: true });
  const tenants = input("");
  const userId = input("", { placeholder: "alice" });
  const expires = input("", { type: "datetime-local" });
  const active = checkbox("Active", true);
  const secret = h("div", { "aria-live": "polite" });
  page(
    "Tokens",
    tokens.element,
    section(
      "New token",
      form(
        async () => {
          const { token } = await api.tokens.createToken({
            id: id.value.trim(),
            name: name.value.trim(),
            tenants: splitList(tenants.value),
            userId: userId.value.trim(),
            active: active.box.checked,
            expiresAt: expires.value ? timestampFromDate(new Date(expires.value)) : undefined,
          });
          secret.replaceChildren(shownOnce(token?.id ?? "", token?.value ?? ""));
          await tokens.reload();
        },
        h(
          "div",
          { class: "grid" },
          field("Id", id, "1 to 64 of A-Z a-z 0-9 _ -"),
          field("Name", name),
          field("Tenants", tenants, "Comma-separated."),
          field("Acts as user (optional)", userId, "The id of a user; empty: the token acts as itself."),
          field("Expires (optional)", expires),
          active.element,
        ),
        button("Create token", () => {}, { submit: true, kind: "primary", permission: CREATE, allowed: may(CREATE) }),
      ),
      secret,
    ),
  );
}

/** The new token's secret, which iamd never shows again, with a copy button. */
function shownOnce(id: string, value: string): HTMLElement {
  const text = h("code", { class: "secret-value" }, value);
  const status = h("span", { role: "status" });
  return h(
    "div",
    { class: "secret" },
    h("p", {}, h("strong", {}, `The secret of token ${id}`), ", shown only this once: copy it now."),
    text,
    button("Copy the secret", async () => {
      try {
        await navigator.clipboard.writeText(value);
        status.textContent = "Copied.";
      } catch {
        // No clipboard access: select the text so the keyboard can copy it.
        const range = document.createRange();
        range.selectNodeContents(text);
        getSelection()?.removeAllRanges();
        getSelection()?.addRange(range);
        status.textContent = "Selected: press Ctrl+C (or ⌘C) to copy.";
      }
    }),
    status,
  );
}

async function show(p: Record<string, string>): Promise<void> {
  const id = p.id ?? "";
  const ids = { id };
  const UPDATE = permission(TokenService.method.updateToken, ids);
  const DELETE = permission(TokenService.method.deleteToken, ids);
  const [may, { token }] = await Promise.all([introspect([UPDATE, DELETE]), api.tokens.getToken({ id })]);
  if (!token) {
    throw new Error(`token ${id} came back empty`);
  }
  const name = input(token.name, { required: true });
  const tenants = input(joinList(token.tenants));
  const active = checkbox("Active", token.active);
  page(
    `Token ${token.id}`,
    h(
      "p",
      {},
      `Acts as ${token.userId ? `user:local:${token.userId}` : `token:${token.id}`}; created ${time(token.createdAt)}; `,
      token.expiresAt ? `expires ${time(token.expiresAt)}. ` : "does not expire. ",
      link(route("history", "token", token.id), "History of this token"),
    ),
    form(
      async () => {
        await api.tokens.updateToken({ id, name: name.value.trim(), tenants: splitList(tenants.value), active: active.box.checked });
        showNotice("Saved.");
        go(route("iam", "tokens", id));
      },
      field("Name", name),
      field("Tenants", tenants, "Comma-separated."),
      active.element,
      h(
        "div",
        { class: "actions" },
        button("Save token", () => {}, { submit: true, kind: "primary", permission: UPDATE, allowed: may(UPDATE) }),
        confirmButton(
          "Delete",
          async () => {
            await api.tokens.deleteToken({ id });
            showNotice(`Deleted token ${id}.`);
            go("#/iam/tokens");
          },
          { permission: DELETE, allowed: may(DELETE) },
        ),
      ),
    ),
  );
}

export const tokenRoutes: Route[] = [
  { pattern: "iam/tokens", render: list },
  { pattern: "iam/tokens/:id", render: show },
];
