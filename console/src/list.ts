// The one paged list: a table of a page of items with Previous and Next, over an API's page
// tokens, or over a list the API answers whole (paged here).
import { busy, h, showError, uid, type Child } from "./ui";

export interface Column<T> {
  label: string;
  cell(item: T): Child;
}

/** A page of items and the token of the next one ("" on the last page). */
export interface Page<T> {
  items: T[];
  next: string;
}

/** Reads the page after `token` ("" for the first), of at most `limit` items. */
export type Fetch<T> = (token: string, limit: number) => Promise<Page<T>>;

export interface PagedList {
  element: HTMLElement;
  /** Loads the first page again. */
  reload(): Promise<void>;
}

/** A list of `label`, `pageSize` items a page, loaded at once. */
export function pagedList<T>(options: {
  label: string;
  columns: Column<T>[];
  fetch: Fetch<T>;
  pageSize?: number;
  empty?: string;
}): PagedList {
  const limit = options.pageSize ?? 20;
  const captionId = uid("list");
  const body = h("tbody");
  const status = h("p", { class: "list-status", role: "status", "aria-live": "polite" });
  const table = h(
    "table",
    { "aria-labelledby": captionId },
    h("caption", { id: captionId }, options.label),
    h("thead", {}, h("tr", {}, ...options.columns.map((c) => h("th", { scope: "col" }, c.label)))),
    body,
  );
  // The tokens of the pages before the current one, to go back.
  let previous: string[] = [];
  let current = "";
  let next = "";
  const prevButton = h("button", { type: "button" }, "Previous");
  const nextButton = h("button", { type: "button" }, "Next");

  const load = async (token: string): Promise<void> => {
    body.replaceChildren(h("tr", {}, h("td", { colspan: options.columns.length }, "Loading…")));
    try {
      const page = await options.fetch(token, limit);
      current = token;
      next = page.next;
      body.replaceChildren(
        ...(page.items.length === 0
          ? [h("tr", {}, h("td", { colspan: options.columns.length }, options.empty ?? "None."))]
          : page.items.map((item) => h("tr", {}, ...options.columns.map((c) => h("td", {}, c.cell(item)))))),
      );
      status.textContent = `Page ${previous.length + 1}: ${page.items.length} shown${next ? ", more on the next page" : ""}.`;
    } catch (error) {
      body.replaceChildren(h("tr", {}, h("td", { colspan: options.columns.length, class: "error" }, "Could not load this list.")));
      status.textContent = "";
      showError(error);
    }
    prevButton.disabled = previous.length === 0;
    nextButton.disabled = next === "";
  };
  prevButton.addEventListener("click", () =>
    busy(prevButton, () => {
      const token = previous.pop() ?? "";
      return load(token);
    }),
  );
  nextButton.addEventListener("click", () =>
    busy(nextButton, () => {
      previous.push(current);
      return load(next);
    }),
  );
  const element = h("div", { class: "paged" }, table, h("div", { class: "pager" }, prevButton, nextButton), status);
  const reload = (): Promise<void> => {
    previous = [];
    return load("");
  };
  void reload();
  return { element, reload };
}

/** Pages a list that the API answers whole (IAM v2 lists): the token is an offset. */
export function allAtOnce<T>(read: () => Promise<T[]>): Fetch<T> {
  return async (token, limit) => {
    const all = await read();
    const start = Number(token) || 0;
    const end = start + limit;
    return { items: all.slice(start, end), next: end < all.length ? String(end) : "" };
  };
}

/** Every item of a paged API, a page of 100 at a time (for pickers, such as a role's policies). */
export async function everything<T>(fetch: Fetch<T>): Promise<T[]> {
  const all: T[] = [];
  let token = "";
  do {
    const page = await fetch(token, 100);
    all.push(...page.items);
    token = page.next;
  } while (token !== "");
  return all;
}
