// An organization's assignments: the paged list, a new one (principal, roles, policies)
// simulated before it is created, and one assignment with its simulated delete.
import { api, introspect, permission } from "./api";
import { editor, SIMULATE } from "./editor";
import { type Assignment, AssignmentService } from "./gen/iamd/accounts/v1/iam_pb";
import { everything, pagedList } from "./list";
import { orgPolicies } from "./org_policies";
import { orgRoles } from "./org_roles";
import { organizationName } from "./orgs";
import { go, type Route } from "./router";
import { choices, field, h, input, joinList, link, page, route, showNotice, time } from "./ui";

const permissions = (org: string, id = "") => {
  const ids = { organization_id: org, assignment_id: id };
  return {
    create: permission(AssignmentService.method.createAssignment, ids),
    remove: permission(AssignmentService.method.deleteAssignment, ids),
  };
};

async function list(p: Record<string, string>): Promise<void> {
  const org = p.org ?? "";
  const { create } = permissions(org);
  const [may, name] = await Promise.all([introspect([create]), organizationName(org)]);
  const assignments = pagedList<Assignment>({
    label: "Assignments, in creation order",
    columns: [
      { label: "Principal", cell: (a) => link(route("orgs", org, "assignments", a.id), a.principal) },
      { label: "Roles", cell: (a) => a.roleIds.length },
      { label: "Policies", cell: (a) => a.policyIds.length },
      { label: "Created", cell: (a) => time(a.createdAt) },
    ],
    fetch: async (pageToken, limit) => {
      const r = await api.assignments.listAssignments({ organizationId: org, pageToken, limit });
      return { items: r.results, next: r.nextPageToken ?? "" };
    },
  });
  page(
    `Assignments of ${name}`,
    h("p", {}, link(route("orgs", org), `Back to ${name}`), " · ", may(create) ? link(route("orgs", org, "new-assignment"), "New assignment") : h("span", { class: "denied-note" }, "creating needs ", h("code", {}, create.action))),
    assignments.element,
  );
}

async function edit(p: Record<string, string>): Promise<void> {
  const org = p.org ?? "";
  const existing = p.id ?? "";
  const perms = permissions(org, existing);
  const [may, orgName, roles, policies, assignment] = await Promise.all([
    introspect([perms.create, perms.remove, SIMULATE]),
    organizationName(org),
    everything(orgRoles(org)),
    everything(orgPolicies(org)),
    existing
      ? api.assignments.getAssignment({ organizationId: org, assignmentId: existing }).then((r) => r.assignment)
      : Promise.resolve(undefined),
  ]);
  const back = link(route("orgs", org, "assignments"), `Assignments of ${orgName}`);
  if (assignment) {
    // An assignment cannot change: it is deleted, or another is made.
    const roleNames = new Map(roles.map((r) => [r.id, r.name]));
    const policyNames = new Map(policies.map((x) => [x.id, x.name]));
    page(
      `Assignment of ${assignment.principal}`,
      h("p", {}, back, " · created ", time(assignment.createdAt), " · ", link(route("history", "assignment", assignment.id), "History of this assignment")),
      h("p", {}, "Roles: ", joinList(assignment.roleIds.map((id) => roleNames.get(id) ?? id)) || "none"),
      h("p", {}, "Policies: ", joinList(assignment.policyIds.map((id) => policyNames.get(id) ?? id)) || "none"),
      editor({
        fields: h("div"),
        read: () => undefined,
        change: () => ({ change: { case: "deleteAssignment", value: { organizationId: org, assignmentId: assignment.id } } }),
        remove: {
          change: { change: { case: "deleteAssignment", value: { organizationId: org, assignmentId: assignment.id } } },
          permission: perms.remove,
          run: async () => {
            await api.assignments.deleteAssignment({ organizationId: org, assignmentId: assignment.id });
            showNotice(`Deleted the assignment of ${assignment.principal}.`);
            go(route("orgs", org, "assignments"));
          },
        },
        allowed: may,
      }),
    );
    return;
  }
  const principal = input("", { required: true, placeholder: "user:local:alice" });
  const chosenRoles = choices("Roles", roles.map((r) => ({ id: r.id, label: r.name })), []);
  const chosenPolicies = choices("Policies", policies.map((x) => ({ id: x.id, label: x.name })), []);
  const read = () => ({ organizationId: org, principal: principal.value.trim(), roleIds: chosenRoles.read(), policyIds: chosenPolicies.read() });
  page(
    `New assignment in ${orgName}`,
    h("p", {}, back),
    editor({
      fields: h("div", {}, field("Principal", principal, "A member expression; it need not name a stored user or team."), chosenRoles.element, chosenPolicies.element),
      read,
      change: (draft) => ({ change: { case: "createAssignment", value: draft } }),
      save: {
        label: "Create assignment",
        permission: perms.create,
        run: async (draft) => {
          const r = await api.assignments.createAssignment(draft);
          go(route("orgs", org, "assignments", r.assignment?.id ?? ""));
        },
      },
      allowed: may,
    }),
  );
}

export const assignmentRoutes: Route[] = [
  { pattern: "orgs/:org/assignments", render: list },
  { pattern: "orgs/:org/new-assignment", render: edit },
  { pattern: "orgs/:org/assignments/:id", render: edit },
];
