// Local users: the list, create, and one user's page (name, properties, teams, delete).
import { api, introspect, permission } from "./api";
import { type User, UserService } from "./gen/iamd/iam/v2/identity_pb";
import { allAtOnce, pagedList } from "./list";
import { go, type Route } from "./router";
import { button, confirmButton, field, form, h, input, joinList, link, page, route, section, showNotice, textarea } from "./ui";

const LIST = permission(UserService.method.listUsers);
const CREATE = permission(UserService.method.createUser);
export const usersNav = { href: "#/iam/users", label: "Users", permission: LIST };

/** `key=value` lines as a map; a line without `=` is refused, naming it. */
function parseProperties(text: string): Record<string, string> {
  const properties: Record<string, string> = {};
  text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "")
    .forEach((line, i) => {
      const at = line.indexOf("=");
      if (at <= 0) {
        throw new Error(`Property line ${i + 1} needs key=value: ${line}`);
      }
      properties[line.slice(0, at).trim()] = line.slice(at + 1).trim();
    });
  return properties;
}

function showProperties(properties: Record<string, string>): string {
  return Object.entries(properties)
    .map(([k, v]) => `${k}=${v}`)
    .join("\n");
}

function propertiesField(properties: Record<string, string>): { element: HTMLElement; read(): Record<string, string> } {
  const text = textarea(showProperties(properties), { placeholder: "department=sales" });
  return {
    element: field("Properties", text, "One key=value a line; conditions read them as subject.<key>."),
    read: () => parseProperties(text.value),
  };
}

async function list(): Promise<void> {
  const may = await introspect([CREATE]);
  const users = pagedList<User>({
    label: "Users, in creation order",
    columns: [
      { label: "Id", cell: (u) => link(route("iam", "users", u.id), u.id) },
      { label: "Name", cell: (u) => u.name },
      { label: "Properties", cell: (u) => joinList(Object.entries(u.properties).map(([k, v]) => `${k}=${v}`)) },
    ],
    fetch: allAtOnce(async () => (await api.users.listUsers({})).users),
  });
  const id = input("", { required: true });
  const name = input("", { required: true });
  const properties = propertiesField({});
  page(
    "Users",
    users.element,
    section(
      "New user",
      form(
        async () => {
          const userId = id.value.trim();
          await api.users.createUser({ id: userId, name: name.value.trim(), properties: properties.read() });
          showNotice(`Created user ${userId}.`);
          go(route("iam", "users", userId));
        },
        h("div", { class: "grid" }, field("Id", id, "1 to 64 of A-Z a-z 0-9 _ -"), field("Name", name)),
        properties.element,
        button("Create user", () => {}, { submit: true, kind: "primary", permission: CREATE, allowed: may(CREATE) }),
      ),
    ),
  );
}

async function show(p: Record<string, string>): Promise<void> {
  const id = p.id ?? "";
  const ids = { id };
  const UPDATE = permission(UserService.method.updateUser, ids);
  const DELETE = permission(UserService.method.deleteUser, ids);
  const [may, { user }] = await Promise.all([introspect([UPDATE, DELETE]), api.users.getUser({ id })]);
  const name = input(user?.name ?? "", { required: true });
  const properties = propertiesField(user?.properties ?? {});
  const teams = h("div", {}, "Loading…");
  page(
    `User ${id}`,
    h("p", {}, `Policies name this user as `, h("code", {}, `user:local:${id}`), ". ", link(route("history", "user", id), "History of this user")),
    form(
      async () => {
        await api.users.updateUser({ id, name: name.value.trim(), properties: properties.read() });
        showNotice("Saved.");
        go(route("iam", "users", id));
      },
      field("Name", name),
      properties.element,
      h(
        "div",
        { class: "actions" },
        button("Save user", () => {}, { submit: true, kind: "primary", permission: UPDATE, allowed: may(UPDATE) }),
        confirmButton(
          "Delete",
          async () => {
            await api.users.deleteUser({ id });
            showNotice(`Deleted user ${id}.`);
            go("#/iam/users");
          },
          { permission: DELETE, allowed: may(DELETE) },
        ),
      ),
    ),
    section("Teams", teams),
  );
  const { teams: of } = await api.users.listUserTeams({ id });
  teams.replaceChildren(
    of.length === 0 ? h("p", {}, "In no team.") : h("ul", {}, ...of.map((t) => h("li", {}, link(route("iam", "teams", t.id), t.name || t.id)))),
  );
}

export const userRoutes: Route[] = [
  { pattern: "iam/users", render: list },
  { pattern: "iam/users/:id", render: show },
];
