// Hash routes (`#/orgs/<id>/policies`): a pattern per page, its `:name` segments as
// parameters. Rendering a route never leaves a blank page: a failure becomes a page that
// says what went wrong.
import { clearAlert, h, page, showError } from "./ui";

export interface Route {
  /** Segments separated by `/`; `:name` matches any one segment. */
  pattern: string;
  render(params: Record<string, string>): Promise<void>;
}

/** The current route's segments, decoded. */
export function segments(): string[] {
  return location.hash
    .replace(/^#\/?/, "")
    .split("/")
    .filter((s) => s !== "")
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    });
}

export function match(routes: Route[], parts: string[]): { route: Route; params: Record<string, string> } | undefined {
  for (const route of routes) {
    const pattern = route.pattern.split("/");
    if (pattern.length !== parts.length) {
      continue;
    }
    const params: Record<string, string> = {};
    if (pattern.every((p, i) => (p.startsWith(":") ? ((params[p.slice(1)] = parts[i] ?? ""), true) : p === parts[i]))) {
      return { route, params };
    }
  }
  return undefined;
}

/** Goes to a route; the same route again renders it again. */
export function go(hash: string): void {
  if (location.hash === hash) {
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  } else {
    location.hash = hash;
  }
}

/** Renders the route the hash names, or a page that says it failed. */
export async function render(routes: Route[]): Promise<void> {
  const parts = segments();
  const found = match(routes, parts);
  clearAlert();
  if (!found) {
    page("Not found", h("p", {}, `The console has no page #/${parts.join("/")}.`), h("p", {}, h("a", { href: "#/orgs" }, "Organizations")));
    return;
  }
  try {
    await found.route.render(found.params);
  } catch (error) {
    page("Something went wrong", h("p", {}, "This page could not be shown; the message below says why."));
    showError(error);
  }
}
