// Organizations: the paged list, create, and one organization's page (rename, delete, its
// domain settings, and links to its policies, roles, assignments and history).
import { api, errorText, introspect, permission, type Permission } from "./api";
import { type Organization, OrganizationService } from "./gen/iamd/accounts/v1/organizations_pb";
import { AdminService } from "./gen/iamd/admin/v1/admin_pb";
import { pagedList } from "./list";
import type { Route } from "./router";
import { go } from "./router";
import { button, checkbox, confirmButton, field, form, h, input, link, page, route, section, showNotice, time } from "./ui";

const LIST = permission(OrganizationService.method.listOrganizations);
const CREATE = permission(OrganizationService.method.createOrganization);
export const orgsNav = { href: "#/orgs", label: "Organizations", permission: LIST };

async function list(): Promise<void> {
  const may = await introspect([CREATE]);
  const name = input("", { required: true, maxlength: 200 });
  const domain = input("", { placeholder: "acme.example" });
  const orgs = pagedList<Organization>({
    label: "Organizations, oldest first",
    columns: [
      { label: "Name", cell: (o) => link(route("orgs", o.id), o.name) },
      { label: "Domain", cell: (o) => o.domain },
      { label: "Created", cell: (o) => time(o.createdAt) },
      { label: "Id", cell: (o) => h("code", {}, o.id) },
    ],
    fetch: async (pageToken, limit) => {
      const r = await api.organizations.listOrganizations({ pageToken, limit });
      return { items: r.results, next: r.nextPageToken ?? "" };
    },
  });
  page(
    "Organizations",
    orgs.element,
    section(
      "New organization",
      form(
        async () => {
          const r = await api.organizations.createOrganization({ name: name.value.trim(), domain: domain.value.trim() });
          showNotice(`Created ${r.organization?.name ?? ""}.`);
          go(route("orgs", r.organization?.id ?? ""));
        },
        field("Name", name),
        field("Domain (optional)", domain),
        button("Create organization", () => {}, { submit: true, kind: "primary", permission: CREATE, allowed: may(CREATE) }),
      ),
    ),
  );
}

function domainPermissions(id: string): Record<"create" | "update" | "remove", Permission> {
  const ids = { org_id: id };
  return {
    create: permission(AdminService.method.addCustomDomainPolicy, ids),
    update: permission(AdminService.method.updateCustomDomainPolicy, ids),
    remove: permission(AdminService.method.resetCustomDomainPolicyToDefault, ids),
  };
}

async function show(p: Record<string, string>): Promise<void> {
  const id = p.org ?? "";
  const UPDATE = permission(OrganizationService.method.updateOrganization, { organization_id: id });
  const DELETE = permission(OrganizationService.method.deleteOrganization, { organization_id: id });
  const [may, { organization: org }] = await Promise.all([
    introspect([UPDATE, DELETE, ...Object.values(domainPermissions(id))]),
    api.organizations.getOrganization({ organizationId: id }),
  ]);
  if (!org) {
    throw new Error(`organization ${id} came back empty`);
  }
  const name = input(org.name, { required: true, maxlength: 200 });
  const domain = input(org.domain);
  const settings = h("div", {}, "Loading the domain settings…");
  page(
    `Organization ${org.name}`,
    h(
      "nav",
      { "aria-label": "This organization", class: "subnav" },
      link(route("orgs", id, "policies"), "Policies"),
      link(route("orgs", id, "roles"), "Roles"),
      link(route("orgs", id, "assignments"), "Assignments"),
      link(route("history", "organization", id), "History"),
    ),
    h("p", {}, "Id ", h("code", {}, org.id), `, created ${time(org.createdAt)}, changed ${time(org.updatedAt)}.`),
    section(
      "Rename",
      form(
        async () => {
          await api.organizations.updateOrganization({ organizationId: id, name: name.value.trim(), domain: domain.value.trim() });
          showNotice("Saved.");
          await show(p);
        },
        field("Name", name),
        field("Domain", domain, "Empty clears it."),
        button("Save", () => {}, { submit: true, kind: "primary", permission: UPDATE, allowed: may(UPDATE) }),
      ),
    ),
    section("Domain settings", settings),
    section(
      "Delete",
      h("p", {}, "Only an organization without custom policies, roles or assignments can be deleted."),
      confirmButton(
        "Delete",
        async () => {
          await api.organizations.deleteOrganization({ organizationId: id });
          showNotice(`Deleted ${org.name}.`);
          go("#/orgs");
        },
        { permission: DELETE, allowed: may(DELETE) },
      ),
    ),
  );

  try {
    await domainSettings(settings, id, may, () => show(p));
  } catch (error) {
    settings.replaceChildren(h("p", { class: "error" }, `Cannot read the domain settings. ${errorText(error)}`));
  }
}

async function domainSettings(
  settings: HTMLElement,
  id: string,
  may: (p: Permission) => boolean,
  again: () => Promise<void>,
): Promise<void> {
  const { create: D_CREATE, update: D_UPDATE, remove: D_DELETE } = domainPermissions(id);
  const { policy } = await api.admin.getCustomDomainPolicy({ orgId: id });
  const own = policy !== undefined && !policy.isDefault;
  const login = checkbox("User names must end with the organization's domain", policy?.userLoginMustBeDomain ?? false);
  const validate = checkbox("Organization domains must be validated", policy?.validateOrgDomains ?? false);
  const smtp = checkbox("SMTP sender address must match an instance domain", policy?.smtpSenderAddressMatchesInstanceDomain ?? false);
  const values = () => ({
    orgId: id,
    userLoginMustBeDomain: login.box.checked,
    validateOrgDomains: validate.box.checked,
    smtpSenderAddressMatchesInstanceDomain: smtp.box.checked,
  });
  const save = own ? D_UPDATE : D_CREATE;
  settings.replaceChildren(
    h("p", {}, own ? "This organization has its own settings." : "This organization uses the instance defaults."),
    form(
      async () => {
        await (own ? api.admin.updateCustomDomainPolicy(values()) : api.admin.addCustomDomainPolicy(values()));
        showNotice("Domain settings saved.");
        await again();
      },
      login.element,
      validate.element,
      smtp.element,
      h(
        "div",
        { class: "actions" },
        button(own ? "Save settings" : "Give it its own settings", () => {}, {
          submit: true,
          kind: "primary",
          permission: save,
          allowed: may(save),
        }),
        own
          ? button(
              "Reset to the defaults",
              async () => {
                await api.admin.resetCustomDomainPolicyToDefault({ orgId: id });
                showNotice("Domain settings reset.");
                await again();
              },
              { permission: D_DELETE, allowed: may(D_DELETE) },
            )
          : null,
      ),
    ),
  );
}

export const orgRoutes: Route[] = [
  { pattern: "orgs", render: list },
  { pattern: "orgs/:org", render: show },
];

/** An organization's name, for the titles of the pages under it. */
export async function organizationName(id: string): Promise<string> {
  const { organization } = await api.organizations.getOrganization({ organizationId: id });
  return organization?.name ?? id;
}
