// An organization's roles: the paged list with dependency counts, and the editor of one
// (name, description, its policies), simulated before it is saved.
import { api, introspect, permission } from "./api";
import { editor, SIMULATE } from "./editor";
import { type Role, RoleService } from "./gen/iamd/accounts/v1/iam_pb";
import { everything, type Fetch, pagedList } from "./list";
import { orgPolicies } from "./org_policies";
import { organizationName } from "./orgs";
import { go, type Route } from "./router";
import { choices, field, h, input, link, page, route, showNotice, textarea } from "./ui";

const permissions = (org: string, id = "") => {
  const ids = { organization_id: org, role_id: id };
  return {
    create: permission(RoleService.method.createRole, ids),
    update: permission(RoleService.method.updateRole, ids),
    remove: permission(RoleService.method.deleteRole, ids),
  };
};

/** The organization's roles, a page at a time. */
export const orgRoles =
  (organizationId: string): Fetch<Role> =>
  async (pageToken, limit) => {
    const r = await api.orgRoles.listRoles({ organizationId, pageToken, limit });
    return { items: r.results, next: r.nextPageToken ?? "" };
  };

async function list(p: Record<string, string>): Promise<void> {
  const org = p.org ?? "";
  const { create } = permissions(org);
  const [may, name] = await Promise.all([introspect([create]), organizationName(org)]);
  const roles = pagedList<Role>({
    label: "Roles, in creation order",
    columns: [
      { label: "Name", cell: (r) => link(route("orgs", org, "roles", r.id), r.name) },
      { label: "Policies", cell: (r) => r.policyIds.length },
      { label: "Principals assigned", cell: (r) => r.usersDependencyCount },
    ],
    fetch: orgRoles(org),
  });
  page(
    `Roles of ${name}`,
    h("p", {}, link(route("orgs", org), `Back to ${name}`), " · ", may(create) ? link(route("orgs", org, "new-role"), "New role") : h("span", { class: "denied-note" }, "creating needs ", h("code", {}, create.action))),
    roles.element,
  );
}

async function edit(p: Record<string, string>): Promise<void> {
  const org = p.org ?? "";
  const existing = p.id ?? "";
  const perms = permissions(org, existing);
  const [may, orgName, policies, role] = await Promise.all([
    introspect([perms.create, perms.update, perms.remove, SIMULATE]),
    organizationName(org),
    everything(orgPolicies(org)),
    existing ? api.orgRoles.getRole({ organizationId: org, roleId: existing }).then((r) => r.role) : Promise.resolve(undefined),
  ]);
  const name = input(role?.name ?? "", { required: true, maxlength: 200 });
  const description = textarea(role?.description ?? "", { rows: 2 });
  const chosen = choices("Policies of the role", policies.map((x) => ({ id: x.id, label: x.name })), role?.policyIds ?? []);
  const fields = h("div", {}, h("div", { class: "grid" }, field("Name", name), field("Description", description)), chosen.element);
  const read = () => ({ organizationId: org, name: name.value.trim(), description: description.value.trim(), policyIds: chosen.read() });
  const update = (draft: ReturnType<typeof read>, roleId: string) => ({
    ...draft,
    roleId,
    updateMask: { paths: ["name", "description", "policy_ids"] },
  });
  page(
    role ? `Role ${role.name}` : `New role in ${orgName}`,
    h(
      "p",
      {},
      link(route("orgs", org, "roles"), `Roles of ${orgName}`),
      role ? ` · assigned to ${role.usersDependencyCount} principal(s) · ` : null,
      role ? link(route("history", "org_role", role.id), "History of this role") : null,
    ),
    editor({
      fields,
      read,
      change: (draft) => ({ change: role ? { case: "updateOrgRole", value: update(draft, role.id) } : { case: "createOrgRole", value: draft } }),
      save: {
        label: role ? "Save role" : "Create role",
        permission: role ? perms.update : perms.create,
        run: async (draft) => {
          const r = role ? await api.orgRoles.updateRole(update(draft, role.id)) : await api.orgRoles.createRole(draft);
          go(route("orgs", org, "roles", r.role?.id ?? existing));
        },
      },
      remove: role
        ? {
            change: { change: { case: "deleteOrgRole", value: { organizationId: org, roleId: role.id } } },
            permission: perms.remove,
            run: async () => {
              await api.orgRoles.deleteRole({ organizationId: org, roleId: role.id });
              showNotice(`Deleted ${role.name}.`);
              go(route("orgs", org, "roles"));
            },
          }
        : undefined,
      allowed: may,
    }),
  );
}

export const orgRoleRoutes: Route[] = [
  { pattern: "orgs/:org/roles", render: list },
  { pattern: "orgs/:org/new-role", render: edit },
  { pattern: "orgs/:org/roles/:id", render: edit },
];
