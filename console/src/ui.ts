// DOM helpers shared by every page: element construction, labelled fields, buttons that
// say which permission they lack, the alert and status regions, and running an action so
// that any failure becomes a readable message instead of a blank page.
import type { JsonObject } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { errorText, type Permission } from "./api";

export type Child = Node | string | number | null | undefined | false;
type Attr = string | number | boolean | null | undefined | ((event: Event) => void);

/** An element with attributes (`on…` keys add listeners; `true` is an empty attribute). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, Attr> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (typeof value === "function") {
      element.addEventListener(key.slice(2), value);
    } else if (value === true) {
      element.setAttribute(key, "");
    } else if (value !== false && value !== null && value !== undefined) {
      element.setAttribute(key, String(value));
    }
  }
  append(element, ...children);
  return element;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) {
      parent.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
    }
  }
}

let sequence = 0;
/** A fresh element id, for labels and descriptions. */
export function uid(prefix: string): string {
  sequence += 1;
  return `${prefix}-${sequence}`;
}

type Control = HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement;

/** A control with its label (and an optional hint the control is described by). */
export function field(label: string, control: Control, hint?: string): HTMLElement {
  control.id ||= uid("f");
  const wrapper = h("div", { class: "field" }, h("label", { for: control.id }, label), control);
  if (hint) {
    const hintId = uid("hint");
    control.setAttribute("aria-describedby", hintId);
    wrapper.append(h("small", { id: hintId, class: "hint" }, hint));
  }
  return wrapper;
}

export function input(value = "", attrs: Record<string, Attr> = {}): HTMLInputElement {
  const element = h("input", { type: "text", autocomplete: "off", spellcheck: "false", ...attrs });
  element.value = value;
  return element;
}

export function textarea(value = "", attrs: Record<string, Attr> = {}): HTMLTextAreaElement {
  const element = h("textarea", { rows: 3, spellcheck: "false", ...attrs });
  element.value = value;
  return element;
}

export function checkbox(label: string, checked: boolean): { element: HTMLElement; box: HTMLInputElement } {
  const box = h("input", { type: "checkbox", id: uid("c") });
  box.checked = checked;
  return { element: h("div", { class: "field check" }, box, h("label", { for: box.id }, label)), box };
}

export function select(options: string[], value: string): HTMLSelectElement {
  const element = h("select", {}, ...options.map((o) => h("option", { value: o }, o)));
  element.value = value;
  return element;
}

/** Comma- or line-separated text as a list, blanks dropped. */
export function splitList(text: string): string[] {
  return text
    .split(/[,\n]/)
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

export function joinList(items: readonly string[]): string {
  return items.join(", ");
}

/** Parses a JSON field, naming it when it is not JSON. */
export function parseJson(label: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${label} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * A button that runs `action` (its failure shown in the alert region). When the caller lacks
 * `permission`, the button stays focusable but is `aria-disabled`, does nothing, and is
 * described by a visible note naming the permission.
 */
export function button(
  label: string,
  action: () => Promise<void> | void,
  options: { permission?: Permission; allowed?: boolean; kind?: "primary" | "danger"; submit?: boolean } = {},
): HTMLElement {
  const b = h("button", { type: options.submit ? "submit" : "button", class: options.kind ?? "" }, label);
  const denied = options.permission !== undefined && options.allowed === false;
  b.addEventListener("click", (event) => {
    if (b.getAttribute("aria-disabled") === "true" || b.getAttribute("aria-busy") === "true") {
      event.preventDefault();
      return;
    }
    if (options.submit) {
      return; // the form's submit handler runs the action
    }
    void busy(b, action);
  });
  if (!denied || !options.permission) {
    return b;
  }
  return deny(b, options.permission);
}

/** Marks a control as refused: `aria-disabled`, a tooltip and a visible note naming the permission. */
export function deny(control: HTMLElement, permission: Permission): HTMLElement {
  const noteId = uid("denied");
  control.setAttribute("aria-disabled", "true");
  control.setAttribute("aria-describedby", noteId);
  control.title = `You need the permission ${permission.action}`;
  return h(
    "span",
    { class: "guarded" },
    control,
    h("small", { id: noteId, class: "denied-note" }, "needs ", h("code", {}, permission.action)),
  );
}

/** Runs an action while its button says it is busy; a failure goes to the alert region. */
export async function busy(control: HTMLElement, action: () => Promise<void> | void): Promise<void> {
  control.setAttribute("aria-busy", "true");
  try {
    clearMessages();
    await action();
  } catch (error) {
    showError(error);
  } finally {
    control.removeAttribute("aria-busy");
  }
}

/** A form whose submit (a button or Enter) runs `action`; it never navigates. */
export function form(action: () => Promise<void> | void, ...children: Child[]): HTMLFormElement {
  const f = h("form", { novalidate: true }, ...children);
  f.addEventListener("submit", (event) => {
    event.preventDefault();
    const submitter = (event as SubmitEvent).submitter ?? f;
    if (submitter.getAttribute("aria-disabled") === "true") {
      return;
    }
    void busy(submitter, action);
  });
  return f;
}

/** A delete button that asks for a second press instead of a dialog. */
export function confirmButton(
  label: string,
  action: () => Promise<void>,
  options: { permission?: Permission; allowed?: boolean } = {},
): HTMLElement {
  const wrapper = h("span", { class: "confirm" });
  const ask = button(
    label,
    () => {
      const yes = button(`Really ${label.toLowerCase()}`, action, { kind: "danger" });
      const no = button("Cancel", () => wrapper.replaceChildren(ask));
      wrapper.replaceChildren(yes, no);
      yes.focus();
    },
    { ...options, kind: "danger" },
  );
  wrapper.append(ask);
  return wrapper;
}

function region(id: string): HTMLElement {
  const element = document.getElementById(id);
  if (!element) {
    throw new Error(`index.html has no #${id}`);
  }
  return element;
}

/** Shows an error in the `role="alert"` region, as words and the server's message. */
export function showError(error: unknown): void {
  const alert = region("alert");
  alert.replaceChildren(h("p", {}, error instanceof Error && !("code" in error) ? error.message : errorText(error)));
  alert.hidden = false;
}

/** A short confirmation in the polite status region. */
export function showNotice(text: string): void {
  region("notice").textContent = text;
}

export function clearMessages(): void {
  clearAlert();
  region("notice").textContent = "";
}

/** Clears the alert region only: a notice ("Saved.") outlives the navigation that follows it. */
export function clearAlert(): void {
  const alert = region("alert");
  alert.replaceChildren();
  alert.hidden = true;
}

/** Replaces the page with a heading and content; the heading takes focus for screen readers. */
export function page(title: string, ...children: Child[]): void {
  const heading = h("h1", { tabindex: -1 }, title);
  const main = region("main");
  main.replaceChildren(heading);
  append(main, ...children);
  document.title = `${title} · iamd console`;
  heading.focus();
}

export function section(title: string, ...children: Child[]): HTMLElement {
  const id = uid("s");
  return h("section", { "aria-labelledby": id }, h("h2", { id }, title), ...children);
}

export function link(href: string, text: string): HTMLAnchorElement {
  return h("a", { href }, text);
}

export function code(text: string): HTMLElement {
  return h("code", {}, text);
}

export function json(value: unknown): HTMLElement {
  return h("pre", { class: "json" }, JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v), 2));
}

export function time(ts: Timestamp | undefined): string {
  return ts ? timestampDate(ts).toISOString().replace(".000Z", "Z") : "";
}

/** The hash route of a path built from parts, each encoded. */
export function route(...parts: string[]): string {
  return `#/${parts.map(encodeURIComponent).join("/")}`;
}

/** Tells the enclosing form (and the editor watching it) that a value changed. */
export function changed(element: HTMLElement): void {
  element.dispatchEvent(new Event("input", { bubbles: true }));
}

export interface Row<T> {
  element: HTMLElement;
  read(): T;
}

/**
 * Repeated groups of fields (statements, definitions): each a fieldset with a numbered
 * legend and a Remove button, and an Add button after them.
 */
export function repeated<T>(
  noun: string,
  make: (value: T | undefined) => Row<T>,
  initial: readonly T[],
): { element: HTMLElement; read(): T[] } {
  const rows: { row: Row<T>; set: HTMLFieldSetElement; legend: HTMLLegendElement }[] = [];
  const list = h("div", { class: "repeated" });
  const renumber = () => rows.forEach((r, i) => (r.legend.textContent = `${noun} ${i + 1}`));
  const add = (value: T | undefined) => {
    const row = make(value);
    const legend = h("legend", {});
    const set = h("fieldset", { class: "row" }, legend, row.element);
    const entry = { row, set, legend };
    set.append(
      button(`Remove this ${noun.toLowerCase()}`, () => {
        rows.splice(rows.indexOf(entry), 1);
        set.remove();
        renumber();
        changed(list);
      }),
    );
    rows.push(entry);
    list.append(set);
    renumber();
  };
  initial.forEach(add);
  const addButton = button(`Add ${noun.toLowerCase()}`, () => {
    add(undefined);
    changed(list);
    rows.at(-1)?.set.querySelector<HTMLElement>("input, select, textarea")?.focus();
  });
  return { element: h("div", {}, list, addButton), read: () => rows.map((r) => r.row.read()) };
}

/** An editable list of strings (members): each with a Remove button, and an input to add one. */
export function stringList(label: string, initial: readonly string[], placeholder = ""): Row<string[]> {
  const values = [...initial];
  const listId = uid("l");
  const items = h("ul", { class: "strings", "aria-labelledby": listId });
  const draw = () =>
    items.replaceChildren(
      ...(values.length === 0
        ? [h("li", { class: "hint" }, "None.")]
        : values.map((v, i) =>
            h(
              "li",
              {},
              code(v),
              " ",
              button(`Remove ${v}`, () => {
                values.splice(i, 1);
                draw();
                changed(items);
              }),
            ),
          )),
    );
  const next = input("", { placeholder });
  const addOne = () => {
    const value = next.value.trim();
    if (value && !values.includes(value)) {
      values.push(value);
      draw();
      changed(items);
    }
    next.value = "";
    next.focus();
  };
  // Enter in the input adds rather than submitting the whole form.
  next.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      addOne();
    }
  });
  draw();
  const element = h(
    "div",
    { class: "string-list" },
    h("h3", { id: listId }, label),
    items,
    h("div", { class: "inline" }, field(`Add to ${label.toLowerCase()}`, next), button("Add", addOne)),
  );
  return { element, read: () => [...values] };
}

/** `conditionsAll` as a JSON array of objects. */
export function conditionsField(initial: readonly JsonObject[]): Row<JsonObject[]> {
  const text = textarea(initial.length === 0 ? "" : JSON.stringify(initial, null, 2), {
    rows: initial.length === 0 ? 2 : 5,
    placeholder: '[{"all": {"stringEquals": {"request.channel": "sms"}}}]',
  });
  const element = field("Conditions (conditionsAll, JSON)", text, "A JSON array; every element must hold. Empty: none.");
  return {
    element,
    read: () => {
      if (text.value.trim() === "") {
        return [];
      }
      const value = parseJson("Conditions", text.value);
      if (!Array.isArray(value) || !value.every((v) => typeof v === "object" && v !== null && !Array.isArray(v))) {
        throw new Error("Conditions must be a JSON array of objects.");
      }
      return value as JsonObject[];
    },
  };
}

/** A group of checkboxes, one per option (a role's policies, an assignment's roles). */
export function choices(legend: string, options: { id: string; label: string }[], selected: readonly string[]): Row<string[]> {
  const boxes = options.map((o) => ({ id: o.id, ...checkbox(o.label, selected.includes(o.id)) }));
  const element = h(
    "fieldset",
    { class: "choices" },
    h("legend", {}, legend),
    ...(options.length === 0 ? [h("p", { class: "hint" }, "None to choose from.")] : boxes.map((b) => b.element)),
  );
  return { element, read: () => boxes.filter((b) => b.box.checked).map((b) => b.id) };
}
