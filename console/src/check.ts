// Check & Explain: one question to the decision engine, its decision and the statements
// behind it (for Explain also every match and the near misses).
import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { api, introspect, permission } from "./api";
import { AuthzService, type CheckRequestSchema, Decision, type Match, Match_Effect, NearMiss_Criterion } from "./gen/iamd/authz/v1/authz_pb";
import type { Route } from "./router";
import { button, code, field, form, h, input, link, page, parseJson, route, section, splitList, textarea } from "./ui";

const CHECK = permission(AuthzService.method.check);
const EXPLAIN = permission(AuthzService.method.explain);
export const checkNav = { href: "#/check", label: "Check & Explain", permission: CHECK };

async function show(): Promise<void> {
  const may = await introspect([CHECK, EXPLAIN]);
  const subject = input("", { required: true, placeholder: "user:local:alice" });
  const teams = input("", { placeholder: "team:local:eng" });
  const action = input("", { required: true, placeholder: "iam:users:get" });
  const resource = input("", { required: true, placeholder: "iam:users:bob" });
  const tenant = input("");
  const organizationId = input("");
  const context = textarea("", { placeholder: '{"request.channel": "sms"}' });
  const result = h("div", { class: "decision", "aria-live": "polite" });
  const request = (): MessageInitShape<typeof CheckRequestSchema> => {
    const ctx = context.value.trim() === "" ? undefined : parseJson("Context", context.value);
    if (ctx !== undefined && (typeof ctx !== "object" || ctx === null || Array.isArray(ctx))) {
      throw new Error("Context must be a JSON object.");
    }
    return {
      subject: subject.value.trim(),
      teams: splitList(teams.value),
      action: action.value.trim(),
      resource: resource.value.trim(),
      tenant: tenant.value.trim(),
      organizationId: organizationId.value.trim(),
      context: ctx as JsonObject | undefined,
    };
  };
  const check = async () => {
    const r = await api.authz.check(request());
    result.replaceChildren(decision(r.allowed, r.decision), matches("Statements that decided", r.reasons));
  };
  const explain = async () => {
    const r = await api.authz.explain({ check: request() });
    result.replaceChildren(
      decision(r.allowed, r.decision),
      matches("Statements that decided", r.reasons),
      matches("Every statement that matched", r.matches),
      section(
        "Near misses",
        r.nearMisses.length === 0
          ? h("p", {}, "None.")
          : h(
              "ul",
              {},
              ...r.nearMisses.map((m) =>
                h("li", {}, statementLink(m), ` (${Match_Effect[m.effect]}) failed on `, h("strong", {}, NearMiss_Criterion[m.failed])),
              ),
            ),
      ),
    );
  };
  page(
    "Check & Explain",
    form(
      check,
      h(
        "div",
        { class: "grid" },
        field("Subject", subject),
        field("Teams (optional)", teams, "Comma-separated team subjects the subject acts with."),
        field("Action", action),
        field("Resource", resource, "A colon resource, or an API path starting with /."),
        field("Tenant (optional)", tenant),
        field("Organization id (optional)", organizationId),
      ),
      field("Context (optional, JSON)", context),
      h(
        "div",
        { class: "actions" },
        button("Check", () => {}, { submit: true, kind: "primary", permission: CHECK, allowed: may(CHECK) }),
        button("Explain", explain, { permission: EXPLAIN, allowed: may(EXPLAIN) }),
      ),
    ),
    section("Decision", result),
  );
}

function decision(allowed: boolean, d: Decision): HTMLElement {
  return h("p", { class: allowed ? "allowed" : "denied" }, "Decision: ", h("strong", {}, Decision[d] ?? (allowed ? "ALLOW" : "DENY")));
}

function statementLink(m: { policyId: string; statementIndex: number; organizationId: string }): HTMLElement {
  const href = m.organizationId ? route("orgs", m.organizationId, "policies", m.policyId) : route("iam", "policies", m.policyId);
  return h("span", {}, link(href, m.policyId), ` statement ${m.statementIndex}`);
}

function matches(title: string, list: Match[]): HTMLElement {
  return section(
    title,
    list.length === 0
      ? h("p", {}, "None.")
      : h(
          "ul",
          {},
          ...list.map((m) => h("li", {}, statementLink(m), " ", code(Match_Effect[m.effect] ?? ""), m.organizationId ? ` in organization ${m.organizationId}` : "")),
        ),
  );
}

export const checkRoutes: Route[] = [{ pattern: "check", render: show }];
