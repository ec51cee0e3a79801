// An organization's policies: the paged list with dependency counts, and the editor of one
// (name, description, definitions with conditionsAll), simulated before it is saved.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { api, introspect, permission } from "./api";
import { editor, SIMULATE } from "./editor";
import { type Policy, type PolicyDefinitionSchema, PolicyService } from "./gen/iamd/accounts/v1/iam_pb";
import { type Fetch, pagedList } from "./list";
import { organizationName } from "./orgs";
import { go, type Route } from "./router";
import {
  conditionsField,
  field,
  h,
  input,
  joinList,
  link,
  page,
  repeated,
  route,
  select,
  showNotice,
  splitList,
  textarea,
  type Row,
} from "./ui";

type DefinitionInit = MessageInitShape<typeof PolicyDefinitionSchema>;

const permissions = (org: string, id = "") => {
  const ids = { organization_id: org, policy_id: id };
  return {
    create: permission(PolicyService.method.createPolicy, ids),
    update: permission(PolicyService.method.updatePolicy, ids),
    remove: permission(PolicyService.method.deletePolicy, ids),
  };
};

/** The organization's policies, a page at a time. */
export const orgPolicies =
  (organizationId: string): Fetch<Policy> =>
  async (pageToken, limit) => {
    const r = await api.orgPolicies.listPolicies({ organizationId, pageToken, limit });
    return { items: r.results, next: r.nextPageToken ?? "" };
  };

async function list(p: Record<string, string>): Promise<void> {
  const org = p.org ?? "";
  const { create } = permissions(org);
  const [may, name] = await Promise.all([introspect([create]), organizationName(org)]);
  const policies = pagedList<Policy>({
    label: "Policies, in creation order",
    columns: [
      { label: "Name", cell: (x) => link(route("orgs", org, "policies", x.id), x.name) },
      { label: "Type", cell: (x) => x.type },
      { label: "Definitions", cell: (x) => x.definitions.length },
      { label: "Roles using it", cell: (x) => x.rolesDependencyCount },
      { label: "Principals it reaches", cell: (x) => x.usersDependencyCount },
    ],
    fetch: orgPolicies(org),
  });
  page(
    `Policies of ${name}`,
    h("p", {}, link(route("orgs", org), `Back to ${name}`), " · ", may(create) ? link(route("orgs", org, "new-policy"), "New policy") : h("span", { class: "denied-note" }, "creating needs ", h("code", {}, create.action))),
    policies.element,
  );
}

function definitionRow(d: DefinitionInit | undefined): Row<DefinitionInit> {
  const effect = select(["allow", "deny"], d?.effect ?? "allow");
  const resources = input(joinList(d?.resources ?? []), { placeholder: "/workspaces/*/channels/**" });
  const actions = input(joinList(d?.actions ?? []), { placeholder: "view, update" });
  const conditions = conditionsField(d?.conditionsAll ?? []);
  return {
    element: h(
      "div",
      { class: "grid" },
      field("Effect", effect),
      field("Resources", resources, "Path patterns, comma-separated: * one segment, ** one or more."),
      field("Actions", actions, "any, create, view, update or delete; comma-separated."),
      conditions.element,
    ),
    read: () => ({ effect: effect.value, resources: splitList(resources.value), actions: splitList(actions.value), conditionsAll: conditions.read() }),
  };
}

async function edit(p: Record<string, string>): Promise<void> {
  const org = p.org ?? "";
  const existing = p.id ?? "";
  const perms = permissions(org, existing);
  const [may, orgName, policy] = await Promise.all([
    introspect([perms.create, perms.update, perms.remove, SIMULATE]),
    organizationName(org),
    existing ? api.orgPolicies.getPolicy({ organizationId: org, policyId: existing }).then((r) => r.policy) : Promise.resolve(undefined),
  ]);
  const name = input(policy?.name ?? "", { required: true, maxlength: 200 });
  const description = textarea(policy?.description ?? "", { rows: 2 });
  const definitions = repeated("Definition", definitionRow, policy?.definitions ?? [{}]);
  const fields = h("div", {}, h("div", { class: "grid" }, field("Name", name), field("Description", description)), h("h3", {}, "Definitions"), definitions.element);
  const read = () => ({ organizationId: org, name: name.value.trim(), description: description.value.trim(), definitions: definitions.read() });
  // A change of every field the editor shows (PATCH keeps the fields a mask leaves out).
  const update = (draft: ReturnType<typeof read>, policyId: string) => ({
    ...draft,
    policyId,
    updateMask: { paths: ["name", "description", "definitions"] },
  });
  page(
    policy ? `Policy ${policy.name}` : `New policy in ${orgName}`,
    h(
      "p",
      {},
      link(route("orgs", org, "policies"), `Policies of ${orgName}`),
      policy
        ? h(
            "span",
            {},
            ` · used by ${policy.rolesDependencyCount} role(s), reaches ${policy.usersDependencyCount} principal(s)`,
            policy.type === "managed" ? " · managed: read-only" : "",
            " · ",
            link(route("history", "org_policy", policy.id), "History of this policy"),
          )
        : null,
    ),
    editor({
      fields,
      read,
      change: (draft) => ({
        change: policy
          ? { case: "updateOrgPolicy", value: update(draft, policy.id) }
          : { case: "createOrgPolicy", value: draft },
      }),
      save: {
        label: policy ? "Save policy" : "Create policy",
        permission: policy ? perms.update : perms.create,
        run: async (draft) => {
          const r = policy
            ? await api.orgPolicies.updatePolicy(update(draft, policy.id))
            : await api.orgPolicies.createPolicy(draft);
          go(route("orgs", org, "policies", r.policy?.id ?? existing));
        },
      },
      remove: policy
        ? {
            change: { change: { case: "deleteOrgPolicy", value: { organizationId: org, policyId: policy.id } } },
            permission: perms.remove,
            run: async () => {
              await api.orgPolicies.deletePolicy({ organizationId: org, policyId: policy.id });
              showNotice(`Deleted ${policy.name}.`);
              go(route("orgs", org, "policies"));
            },
          }
        : undefined,
      allowed: may,
    }),
  );
}

export const orgPolicyRoutes: Route[] = [
  { pattern: "orgs/:org/policies", render: list },
  { pattern: "orgs/:org/new-policy", render: edit },
  { pattern: "orgs/:org/policies/:id", render: edit },
];
