// History: the events of one object, or of the whole instance, a page at a time.
import { api, permission } from "./api";
import { type Event, HistoryService } from "./gen/iamd/history/v1/history_pb";
import { pagedList } from "./list";
import { go, type Route } from "./router";
import { button, field, form, h, input, json, link, page, route, section, select, time } from "./ui";

const LIST = permission(HistoryService.method.listEvents);
export const historyNav = { href: "#/history", label: "History", permission: LIST };

/** The kinds of object the log names (`object_type`). */
const KINDS = [
  "organization",
  "domain_policy",
  "iam_policy",
  "iam_role",
  "tenant",
  "user",
  "team",
  "token",
  "org_policy",
  "org_role",
  "assignment",
];

async function show(p: Record<string, string>): Promise<void> {
  const objectType = p.type ?? "";
  const objectId = p.id ?? "";
  const events = pagedList<Event>({
    label: objectType ? `Events of ${objectType} ${objectId}, oldest first` : "Events of the instance, oldest first",
    columns: [
      { label: "Position", cell: (e) => e.position.toString() },
      { label: "Time", cell: (e) => time(e.createdAt) },
      { label: "Object", cell: (e) => link(route("history", e.objectType, e.objectId), `${e.objectType} ${e.objectId}`) },
      { label: "Event", cell: (e) => h("code", {}, e.eventType) },
      { label: "Actor", cell: (e) => e.actor },
      {
        label: "What changed",
        cell: (e) => h("details", {}, h("summary", {}, `Payload of event ${e.position}`), json(e.payload ?? {})),
      },
    ],
    fetch: async (pageToken, limit) => {
      const r = await api.history.listEvents({ objectType, objectId, pageToken, limit });
      return { items: r.events, next: r.nextPageToken ?? "" };
    },
  });
  const kind = select(KINDS, objectType || "organization");
  const id = input(objectId, { required: true });
  page(
    objectType ? `History of ${objectType} ${objectId}` : "History of the instance",
    objectType ? h("p", {}, link("#/history", "The whole instance's history")) : null,
    events.element,
    section(
      "History of another object",
      form(
        () => go(route("history", kind.value, id.value.trim())),
        h("div", { class: "inline" }, field("Kind", kind), field("Id", id), button("Show", () => {}, { submit: true })),
      ),
    ),
  );
}

export const historyRoutes: Route[] = [
  { pattern: "history", render: show },
  { pattern: "history/:type/:id", render: show },
];
