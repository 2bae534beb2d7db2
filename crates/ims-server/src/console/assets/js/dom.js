// Small DOM helpers: element building (text is always set as text, never parsed as HTML), messages,
// and a confirmation dialog.

/**
 * Builds an element. `attrs` keys: `class`, `text`, `on<event>` handlers, `dataset`, boolean
 * attributes (true adds, false/null/undefined leaves out), anything else as an attribute.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "value" && "value" in el) el.value = v;
    else if (k === "checked" || k === "selected") el[k] = Boolean(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let idCounter = 0;
/** A unique element id with a readable prefix. */
export function uid(prefix) {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/** A labelled form field: a wrapper with its <label> bound to the control, and an optional hint. */
export function field(labelText, control, hint) {
  if (!control.id) control.id = uid("f");
  const parts = [h("label", { for: control.id, text: labelText }), control];
  if (hint) {
    const hintEl = h("small", { class: "hint", id: uid("hint"), text: hint });
    control.setAttribute("aria-describedby", hintEl.id);
    parts.push(hintEl);
  }
  return h("div", { class: "field" }, parts);
}

/** A <select> with `options` as [value, label] pairs (or plain strings). */
export function select(attrs, options, selected) {
  return h(
    "select",
    attrs,
    options.map((o) => {
      const [value, label] = Array.isArray(o) ? o : [o, o];
      return h("option", { value, selected: String(value) === String(selected ?? ""), text: label });
    }),
  );
}

/** A message box: `kind` is error (announced at once), success or info. */
export function message(kind, text) {
  return h("div", { class: `msg msg-${kind}`, role: kind === "error" ? "alert" : "status", text });
}

/** Shows a message in `slot` (replacing what it showed); an empty text clears it. */
export function say(slot, kind, text) {
  if (!text) return replace(slot);
  return replace(slot, message(kind, text));
}

/** A short-lived notice at the corner of the page, announced to screen readers. */
export function toast(text, kind = "success") {
  const area = document.getElementById("toasts");
  if (!area) return;
  const el = h("div", { class: `toast toast-${kind}`, text });
  area.append(el);
  setTimeout(() => el.remove(), 6000);
}

/** Announces `text` through the page's polite live region. */
export function announce(text) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  setTimeout(() => (region.textContent = text), 30);
}

/**
 * Asks a yes/no question in a modal <dialog> (focus stays inside it; Escape answers no).
 * Resolves true when confirmed.
 */
export function confirmDialog({ title, body, confirmLabel = "Confirm", danger = false }) {
  return new Promise((resolve) => {
    const titleId = uid("dlg-title");
    const ok = h("button", { type: "submit", value: "yes", class: danger ? "btn btn-danger" : "btn btn-primary", text: confirmLabel });
    const cancel = h("button", { type: "submit", value: "no", class: "btn", text: "Cancel", formnovalidate: true });
    const form = h("form", { method: "dialog" }, h("h2", { id: titleId, text: title }), h("p", { text: body }), h("div", { class: "actions" }, cancel, ok));
    const dialog = h("dialog", { class: "dialog", "aria-labelledby": titleId }, form);
    const opener = document.activeElement;
    dialog.addEventListener("close", () => {
      const yes = dialog.returnValue === "yes";
      dialog.remove();
      if (opener && opener.isConnected) opener.focus();
      resolve(yes);
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

/** Disables a button while `work` runs, showing `busyLabel`; returns what `work` returns. */
export async function busy(button, busyLabel, work) {
  const label = button.textContent;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  if (busyLabel) button.textContent = busyLabel;
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    button.textContent = label;
  }
}

/** A text that copies itself to the clipboard: for secrets shown once. */
export function secretBox(labelText, secret) {
  const input = h("input", { type: "text", readonly: true, value: secret, class: "secret mono", spellcheck: "false" });
  const copy = h("button", {
    type: "button",
    class: "btn",
    text: "Copy",
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(secret);
        copy.textContent = "Copied";
      } catch {
        input.select();
        copy.textContent = "Press Ctrl+C to copy";
      }
    },
  });
  return h("div", { class: "secret-box" }, field(labelText, input), copy);
}
