// IAM v2 policies: the list, and the editor of one (name, tenants, members, statements),
// simulated before it is saved.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { api, introspect, permission, type Permission } from "./api";
import { editor, SIMULATE } from "./editor";
import { type Policy, PolicyService, type StatementSchema, Statement_Effect, Type } from "./gen/iamd/iam/v2/policy_pb";
import { allAtOnce, pagedList } from "./list";
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
  stringList,
  type Row,
} from "./ui";

type StatementInit = MessageInitShape<typeof StatementSchema>;

const LIST = permission(PolicyService.method.listPolicies);
const CREATE = permission(PolicyService.method.createPolicy);
export const iamPoliciesNav = { href: "#/iam/policies", label: "IAM policies", permission: LIST };

async function list(): Promise<void> {
  const may = await introspect([CREATE]);
  const policies = pagedList<Policy>({
    label: "IAM v2 policies, in creation order",
    columns: [
      { label: "Id", cell: (p) => link(route("iam", "policies", p.id), p.id) },
      { label: "Name", cell: (p) => p.name },
      { label: "Type", cell: (p) => Type[p.type] },
      { label: "Members", cell: (p) => joinList(p.members) },
      { label: "Statements", cell: (p) => p.statements.length },
      { label: "Tenants", cell: (p) => joinList(p.tenants) },
    ],
    fetch: allAtOnce(async () => (await api.iamPolicies.listPolicies({})).policies),
  });
  page("IAM policies", newLink(may), policies.element);
}

function newLink(may: (p: Permission) => boolean): HTMLElement {
  return may(CREATE)
    ? h("p", {}, link("#/iam/new-policy", "New policy"))
    : h("p", { class: "denied-note" }, "You may not create policies: that needs ", h("code", {}, CREATE.action), ".");
}

function statementRow(s: StatementInit | undefined): Row<StatementInit> {
  const effect = select(["ALLOW", "DENY"], s?.effect === Statement_Effect.DENY ? "DENY" : "ALLOW");
  const actions = input(joinList(s?.actions ?? []), { placeholder: "iam:users:get, iam:teams:*" });
  const role = input(s?.role ?? "", { placeholder: "viewer" });
  const resources = input(joinList(s?.resources ?? ["*"]));
  const tenants = input(joinList(s?.tenants ?? ["*"]));
  const conditions = conditionsField(s?.conditionsAll ?? []);
  return {
    element: h(
      "div",
      { class: "grid" },
      field("Effect", effect),
      field("Actions", actions, "Comma-separated; may be empty when a role is given."),
      field("Role", role, "A role's id; may be empty when actions are given."),
      field("Resources", resources),
      field("Tenants", tenants, "Comma-separated; * is every tenant."),
      conditions.element,
    ),
    read: () => ({
      effect: effect.value === "DENY" ? Statement_Effect.DENY : Statement_Effect.ALLOW,
      actions: splitList(actions.value),
      role: role.value.trim(),
      resources: splitList(resources.value),
      tenants: splitList(tenants.value),
      conditionsAll: conditions.read(),
    }),
  };
}

async function edit(p: Record<string, string>): Promise<void> {
  const existing = p.id ?? "";
  const ids = { id: existing };
  const UPDATE = permission(PolicyService.method.updatePolicy, ids);
  const DELETE = permission(PolicyService.method.deletePolicy, ids);
  const [may, policy] = await Promise.all([
    introspect(existing ? [UPDATE, DELETE, SIMULATE] : [CREATE, SIMULATE]),
    existing ? api.iamPolicies.getPolicy({ id: existing }).then((r) => r.policy) : Promise.resolve(undefined),
  ]);
  const id = input(policy?.id ?? "", { required: true, pattern: "[A-Za-z0-9_-]{1,64}", readonly: !!policy });
  const name = input(policy?.name ?? "", { required: true });
  const tenants = input(joinList(policy?.tenants ?? []));
  const members = stringList("Members", policy?.members ?? [], "user:local:alice");
  const statements = repeated("Statement", statementRow, policy?.statements ?? [{}]);
  const fields = h(
    "div",
    {},
    h("div", { class: "grid" }, field("Id", id, policy ? "Cannot be changed." : "1 to 64 of A-Z a-z 0-9 _ -"), field("Name", name), field("Tenants", tenants, "Comma-separated.")),
    members.element,
    h("h3", {}, "Statements"),
    statements.element,
  );
  const read = () => ({
    id: id.value.trim(),
    name: name.value.trim(),
    tenants: splitList(tenants.value),
    members: members.read(),
    statements: statements.read(),
  });
  const title = policy ? `IAM policy ${policy.id}` : "New IAM policy";
  page(
    title,
    policy
      ? h(
          "p",
          {},
          policy.type === Type.MANAGED ? "Managed by iamd: its statements cannot change. " : "",
          link(route("history", "iam_policy", policy.id), "History of this policy"),
        )
      : null,
    editor({
      fields,
      read,
      change: (draft) => ({ change: policy ? { case: "updateIamPolicy", value: draft } : { case: "createIamPolicy", value: draft } }),
      save: {
        label: policy ? "Save policy" : "Create policy",
        permission: policy ? UPDATE : CREATE,
        run: async (draft) => {
          if (policy) {
            await api.iamPolicies.updatePolicy(draft);
          } else {
            await api.iamPolicies.createPolicy(draft);
          }
          go(route("iam", "policies", draft.id));
        },
      },
      remove: policy
        ? {
            change: { change: { case: "deleteIamPolicy", value: { id: policy.id } } },
            permission: DELETE,
            run: async () => {
              await api.iamPolicies.deletePolicy({ id: policy.id });
              showNotice(`Deleted ${policy.id}.`);
              go("#/iam/policies");
            },
          }
        : undefined,
      allowed: may,
    }),
  );
}

export const iamPolicyRoutes: Route[] = [
  { pattern: "iam/policies", render: list },
  { pattern: "iam/new-policy", render: edit },
  { pattern: "iam/policies/:id", render: edit },
];
