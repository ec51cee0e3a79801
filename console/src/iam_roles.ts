// IAM v2 roles: the list, and the editor of one (name, actions, tenants), simulated before
// it is saved.
import { api, introspect, permission } from "./api";
import { editor, SIMULATE } from "./editor";
import { type Role, RoleService, Type } from "./gen/iamd/iam/v2/policy_pb";
import { allAtOnce, pagedList } from "./list";
import { go, type Route } from "./router";
import { field, h, input, joinList, link, page, route, showNotice, splitList } from "./ui";

const LIST = permission(RoleService.method.listRoles);
const CREATE = permission(RoleService.method.createRole);
export const iamRolesNav = { href: "#/iam/roles", label: "IAM roles", permission: LIST };

async function list(): Promise<void> {
  const may = await introspect([CREATE]);
  const roles = pagedList<Role>({
    label: "IAM v2 roles, in creation order",
    columns: [
      { label: "Id", cell: (r) => link(route("iam", "roles", r.id), r.id) },
      { label: "Name", cell: (r) => r.name },
      { label: "Type", cell: (r) => Type[r.type] },
      { label: "Actions", cell: (r) => joinList(r.actions) },
      { label: "Tenants", cell: (r) => joinList(r.tenants) },
    ],
    fetch: allAtOnce(async () => (await api.iamRoles.listRoles({})).roles),
  });
  page(
    "IAM roles",
    may(CREATE)
      ? h("p", {}, link("#/iam/new-role", "New role"))
      : h("p", { class: "denied-note" }, "You may not create roles: that needs ", h("code", {}, CREATE.action), "."),
    roles.element,
  );
}

async function edit(p: Record<string, string>): Promise<void> {
  const existing = p.id ?? "";
  const ids = { id: existing };
  const UPDATE = permission(RoleService.method.updateRole, ids);
  const DELETE = permission(RoleService.method.deleteRole, ids);
  const [may, role] = await Promise.all([
    introspect(existing ? [UPDATE, DELETE, SIMULATE] : [CREATE, SIMULATE]),
    existing ? api.iamRoles.getRole({ id: existing }).then((r) => r.role) : Promise.resolve(undefined),
  ]);
  const id = input(role?.id ?? "", { required: true, readonly: !!role });
  const name = input(role?.name ?? "", { required: true });
  const actions = input(joinList(role?.actions ?? []), { placeholder: "iam:users:get, iam:teams:*" });
  const tenants = input(joinList(role?.tenants ?? []));
  const fields = h(
    "div",
    { class: "grid" },
    field("Id", id, role ? "Cannot be changed." : "1 to 64 of A-Z a-z 0-9 _ -"),
    field("Name", name),
    field("Actions", actions, "Comma-separated, svc:type:verb with wildcards."),
    field("Tenants", tenants, "Comma-separated."),
  );
  const read = () => ({ id: id.value.trim(), name: name.value.trim(), actions: splitList(actions.value), tenants: splitList(tenants.value) });
  page(
    role ? `IAM role ${role.id}` : "New IAM role",
    role
      ? h("p", {}, role.type === Type.MANAGED ? "Managed by iamd: its actions cannot change. " : "", link(route("history", "iam_role", role.id), "History of this role"))
      : null,
    editor({
      fields,
      read,
      change: (draft) => ({ change: role ? { case: "updateIamRole", value: draft } : { case: "createIamRole", value: draft } }),
      save: {
        label: role ? "Save role" : "Create role",
        permission: role ? UPDATE : CREATE,
        run: async (draft) => {
          await (role ? api.iamRoles.updateRole(draft) : api.iamRoles.createRole(draft));
          go(route("iam", "roles", draft.id));
        },
      },
      remove: role
        ? {
            change: { change: { case: "deleteIamRole", value: { id: role.id } } },
            permission: DELETE,
            run: async () => {
              await api.iamRoles.deleteRole({ id: role.id });
              showNotice(`Deleted ${role.id}.`);
              go("#/iam/roles");
            },
          }
        : undefined,
      allowed: may,
    }),
  );
}

export const iamRoleRoutes: Route[] = [
  { pattern: "iam/roles", render: list },
  { pattern: "iam/new-role", render: edit },
  { pattern: "iam/roles/:id", render: edit },
];
