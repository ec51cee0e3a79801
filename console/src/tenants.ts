// Tenants: the list, create (with or without their three policies), rename and delete.
import { api, introspect, permission } from "./api";
import { type Tenant, TenantService, Type } from "./gen/iamd/iam/v2/policy_pb";
import { allAtOnce, pagedList } from "./list";
import { go, type Route } from "./router";
import { button, checkbox, confirmButton, field, form, h, input, link, page, route, section, showNotice } from "./ui";

const LIST = permission(TenantService.method.listTenants);
const CREATE = permission(TenantService.method.createTenant);
export const tenantsNav = { href: "#/iam/tenants", label: "Tenants", permission: LIST };

async function list(): Promise<void> {
  const may = await introspect([CREATE]);
  const tenants = pagedList<Tenant>({
    label: "Tenants, in creation order",
    columns: [
      { label: "Id", cell: (t) => link(route("iam", "tenants", t.id), t.id) },
      { label: "Name", cell: (t) => t.name },
      { label: "Type", cell: (t) => Type[t.type] },
    ],
    fetch: allAtOnce(async () => (await api.tenants.listTenants({})).tenants),
  });
  const id = input("", { required: true });
  const name = input("", { required: true });
  const skip = checkbox("Without its owners, editors and viewers policies", false);
  page(
    "Tenants",
    tenants.element,
    section(
      "New tenant",
      form(
        async () => {
          await api.tenants.createTenant({ id: id.value.trim(), name: name.value.trim(), skipPolicies: skip.box.checked });
          showNotice(`Created tenant ${id.value.trim()}.`);
          go(route("iam", "tenants", id.value.trim()));
        },
        h("div", { class: "grid" }, field("Id", id, "1 to 48 of A-Z a-z 0-9 _ -"), field("Name", name)),
        skip.element,
        button("Create tenant", () => {}, { submit: true, kind: "primary", permission: CREATE, allowed: may(CREATE) }),
      ),
    ),
  );
}

async function show(p: Record<string, string>): Promise<void> {
  const id = p.id ?? "";
  const ids = { id };
  const UPDATE = permission(TenantService.method.updateTenant, ids);
  const DELETE = permission(TenantService.method.deleteTenant, ids);
  const [may, { tenant }] = await Promise.all([introspect([UPDATE, DELETE]), api.tenants.getTenant({ id })]);
  const name = input(tenant?.name ?? "", { required: true });
  page(
    `Tenant ${id}`,
    h("p", {}, link(route("history", "tenant", id), "History of this tenant")),
    form(
      async () => {
        await api.tenants.updateTenant({ id, name: name.value.trim() });
        showNotice("Saved.");
        go(route("iam", "tenants", id));
      },
      field("Name", name),
      h(
        "div",
        { class: "actions" },
        button("Rename", () => {}, { submit: true, kind: "primary", permission: UPDATE, allowed: may(UPDATE) }),
        confirmButton(
          "Delete",
          async () => {
            await api.tenants.deleteTenant({ id });
            showNotice(`Deleted tenant ${id}.`);
            go("#/iam/tenants");
          },
          { permission: DELETE, allowed: may(DELETE) },
        ),
      ),
    ),
    h("p", { class: "hint" }, "Deleting a tenant takes it out of every policy, role and statement; a statement left without tenants goes."),
  );
}

export const tenantRoutes: Route[] = [
  { pattern: "iam/tenants", render: list },
  { pattern: "iam/tenants/:id", render: show },
];
