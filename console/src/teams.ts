// Local teams: the list, create, and one team's page (name, tenants, its users, delete).
import { api, introspect, permission } from "./api";
import { type Team, TeamService } from "./gen/iamd/iam/v2/identity_pb";
import { allAtOnce, pagedList } from "./list";
import { go, type Route } from "./router";
import { button, confirmButton, field, form, h, input, joinList, link, page, route, section, showNotice, splitList } from "./ui";

const LIST = permission(TeamService.method.listTeams);
const CREATE = permission(TeamService.method.createTeam);
export const teamsNav = { href: "#/iam/teams", label: "Teams", permission: LIST };

async function list(): Promise<void> {
  const may = await introspect([CREATE]);
  const teams = pagedList<Team>({
    label: "Teams, in creation order",
    columns: [
      { label: "Id", cell: (t) => link(route("iam", "teams", t.id), t.id) },
      { label: "Name", cell: (t) => t.name },
      { label: "Tenants", cell: (t) => joinList(t.tenants) },
    ],
    fetch: allAtOnce(async () => (await api.teams.listTeams({})).teams),
  });
  const id = input("", { required: true });
  const name = input("", { required: true });
  const tenants = input("");
  page(
    "Teams",
    teams.element,
    section(
      "New team",
      form(
        async () => {
          const teamId = id.value.trim();
          await api.teams.createTeam({ id: teamId, name: name.value.trim(), tenants: splitList(tenants.value) });
          showNotice(`Created team ${teamId}.`);
          go(route("iam", "teams", teamId));
        },
        h("div", { class: "grid" }, field("Id", id, "1 to 64 of A-Z a-z 0-9 _ -"), field("Name", name), field("Tenants", tenants, "Comma-separated.")),
        button("Create team", () => {}, { submit: true, kind: "primary", permission: CREATE, allowed: may(CREATE) }),
      ),
    ),
  );
}

async function show(p: Record<string, string>): Promise<void> {
  const id = p.id ?? "";
  const ids = { id };
  const UPDATE = permission(TeamService.method.updateTeam, ids);
  const DELETE = permission(TeamService.method.deleteTeam, ids);
  const ADD = permission(TeamService.method.addTeamUsers, ids);
  const REMOVE = permission(TeamService.method.removeTeamUsers, ids);
  const [may, { team }, { userIds }] = await Promise.all([
    introspect([UPDATE, DELETE, ADD, REMOVE]),
    api.teams.getTeam({ id }),
    api.teams.listTeamUsers({ id }),
  ]);
  const name = input(team?.name ?? "", { required: true });
  const tenants = input(joinList(team?.tenants ?? []));
  const newUser = input("", { placeholder: "alice" });
  const again = () => go(route("iam", "teams", id));
  page(
    `Team ${id}`,
    h("p", {}, "Policies name this team as ", h("code", {}, `team:local:${id}`), ". ", link(route("history", "team", id), "History of this team")),
    form(
      async () => {
        await api.teams.updateTeam({ id, name: name.value.trim(), tenants: splitList(tenants.value) });
        showNotice("Saved.");
        again();
      },
      h("div", { class: "grid" }, field("Name", name), field("Tenants", tenants, "Comma-separated.")),
      h(
        "div",
        { class: "actions" },
        button("Save team", () => {}, { submit: true, kind: "primary", permission: UPDATE, allowed: may(UPDATE) }),
        confirmButton(
          "Delete",
          async () => {
            await api.teams.deleteTeam({ id });
            showNotice(`Deleted team ${id}.`);
            go("#/iam/teams");
          },
          { permission: DELETE, allowed: may(DELETE) },
        ),
      ),
    ),
    section(
      "Users",
      userIds.length === 0
        ? h("p", {}, "No users.")
        : h(
            "ul",
            {},
            ...userIds.map((u) =>
              h(
                "li",
                {},
                link(route("iam", "users", u), u),
                " ",
                button(
                  `Remove ${u}`,
                  async () => {
                    await api.teams.removeTeamUsers({ id, userIds: [u] });
                    showNotice(`Removed ${u}.`);
                    again();
                  },
                  { permission: REMOVE, allowed: may(REMOVE) },
                ),
              ),
            ),
          ),
      form(
        async () => {
          await api.teams.addTeamUsers({ id, userIds: splitList(newUser.value) });
          showNotice("Added.");
          again();
        },
        h(
          "div",
          { class: "inline" },
          field("Add users (ids, comma-separated)", newUser),
          button("Add users", () => {}, { submit: true, permission: ADD, allowed: may(ADD) }),
        ),
      ),
    ),
  );
}

export const teamRoutes: Route[] = [
  { pattern: "iam/teams", render: list },
  { pattern: "iam/teams/:id", render: show },
];
