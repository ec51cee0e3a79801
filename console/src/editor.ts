// The one editor of everything a decision depends on (IAM v2 policies and roles,
// organization policies and roles, assignments): the page's fields, then "Simulate", which
// lays the unsaved change over the server's state and decides iamd's recent decisions (and
// any checks typed here) before and after, then "Save" (and "Delete", simulated the same way).
import type { MessageInitShape } from "@bufbuild/protobuf";
import { api, errorText, permission, type Permission } from "./api";
import { AuthzService, type ChangeSchema, type CheckRequestSchema, type SimulateResponse, type SimulatedCheck } from "./gen/iamd/authz/v1/authz_pb";
import { button, code, confirmButton, field, form, h, section, showNotice, textarea, uid } from "./ui";

export type ChangeInit = MessageInitShape<typeof ChangeSchema>;
type CheckInit = MessageInitShape<typeof CheckRequestSchema>;

export const SIMULATE = permission(AuthzService.method.simulate);

export interface EditorOptions<D> {
  /** The fields, built by the page. */
  fields: HTMLElement;
  /** The unsaved state, read from the fields; throws an Error that names a bad field. */
  read(): D;
  /** The write `draft` would make, as Simulate takes it. */
  change(draft: D): ChangeInit;
  /** Making the write; absent for what cannot be changed (an assignment), which has no Simulate either. */
  save?: { label: string; permission: Permission; run(draft: D): Promise<void> };
  /** Deleting the object, when it exists. */
  remove?: { change: ChangeInit; run(): Promise<void>; permission: Permission };
  allowed(p: Permission): boolean;
}

/** The editor's element: fields, optional checks, the buttons and the simulation panel. */
export function editor<D>(o: EditorOptions<D>): HTMLElement {
  const checks = textarea("", { rows: 2, placeholder: "user:local:alice iam:users:get iam:users:bob" });
  const panelId = uid("sim");
  const panel = h("div", { id: panelId, class: "simulation", "aria-live": "polite" }, notYet());
  // The draft the panel shows the simulation of, to say when the fields moved on.
  let simulated = "";
  const stale = h("p", { class: "hint", role: "status" });
  o.fields.addEventListener("input", () => {
    if (simulated !== "") {
      stale.textContent = "The form changed since this simulation: simulate again before you save.";
    }
  });

  const simulate = async (change: ChangeInit, what: string): Promise<void> => {
    panel.replaceChildren(h("p", {}, "Simulating…"));
    stale.textContent = "";
    try {
      const response = await api.authz.simulate({ changes: [change], checks: parseChecks(checks.value), recent: true });
      panel.replaceChildren(...results(response, what));
    } catch (error) {
      panel.replaceChildren(h("p", { class: "error", role: "alert" }, `Simulation failed. ${errorText(error)}`));
    }
  };
  const simulateDraft = async (): Promise<void> => {
    const draft = o.read();
    simulated = JSON.stringify(o.change(draft), (_k, v) => (typeof v === "bigint" ? v.toString() : v));
    await simulate(o.change(draft), "Saving this change");
  };
  const buttons = h("div", { class: "actions" });
  if (o.save) {
    const { label, permission } = o.save;
    buttons.append(
      button("Simulate", simulateDraft, { permission: SIMULATE, allowed: o.allowed(SIMULATE) }),
      button(label, () => {}, { submit: true, kind: "primary", permission, allowed: o.allowed(permission) }),
    );
  }
  if (o.remove) {
    const remove = o.remove;
    buttons.append(
      button("Simulate delete", () => simulate(remove.change, "Deleting it"), {
        permission: SIMULATE,
        allowed: o.allowed(SIMULATE),
      }),
      confirmButton("Delete", remove.run, { permission: remove.permission, allowed: o.allowed(remove.permission) }),
    );
  }
  const save = async (): Promise<void> => {
    if (o.save) {
      await o.save.run(o.read());
      showNotice("Saved.");
    }
  };
  return h(
    "div",
    { class: "editor" },
    form(
      save,
      o.fields,
      h(
        "details",
        { class: "checks" },
        h("summary", {}, "Checks to simulate besides the recent decisions"),
        field("Checks, one per line: subject action resource [tenant]", checks),
      ),
      buttons,
    ),
    section("Simulation of the unsaved change", stale, panel),
  );
}

function notYet(): HTMLElement {
  return h("p", { class: "hint" }, "Press Simulate to see which recent decisions this change would turn around before you save it.");
}

/** `subject action resource [tenant]` per line. */
function parseChecks(text: string): CheckInit[] {
  return text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "")
    .map((line, i) => {
      const [subject, action, resource, tenant, ...rest] = line.split(/\s+/);
      if (!subject || !action || !resource || rest.length > 0) {
        throw new Error(`Check ${i + 1} needs "subject action resource [tenant]": ${line}`);
      }
      return { subject, action, resource, tenant: tenant ?? "" };
    });
}

function results(response: SimulateResponse, what: string): HTMLElement[] {
  const changed = response.results.filter((r) => r.changed);
  const allow = changed.filter((r) => r.after?.allowed && !r.before?.allowed);
  const deny = changed.filter((r) => !r.after?.allowed && r.before?.allowed);
  const total = response.results.length;
  const summary = h(
    "p",
    { class: "summary" },
    `${what} would turn around ${changed.length === 0 ? "none" : changed.length} of the ${total} decision${total === 1 ? "" : "s"} simulated.`,
  );
  return [summary, outcomeList("Would newly allow", allow), outcomeList("Would newly deny", deny)];
}

function outcomeList(title: string, items: SimulatedCheck[]): HTMLElement {
  const id = uid("out");
  return h(
    "div",
    { class: `outcome ${title.endsWith("allow") ? "allow" : "deny"}` },
    h("h3", { id }, `${title} (${items.length})`),
    items.length === 0
      ? h("p", { class: "hint" }, "Nothing.")
      : h("ul", { "aria-labelledby": id }, ...items.map(describe)),
  );
}

function describe(r: SimulatedCheck): HTMLElement {
  const c = r.check;
  const reasons = r.after?.reasons ?? [];
  return h(
    "li",
    {},
    code(c?.subject ?? ""),
    " ",
    code(c?.action ?? ""),
    " on ",
    code(c?.resource ?? ""),
    c?.tenant ? ` in tenant ${c.tenant}` : "",
    c?.organizationId ? ` in organization ${c.organizationId}` : "",
    r.recent ? " (a recent decision)" : " (a check asked here)",
    reasons.length > 0
      ? h("span", { class: "hint" }, ` — by ${reasons.map((m) => `${m.policyId} statement ${m.statementIndex}`).join(", ")}`)
      : "",
  );
}
