// Switch project (access key sessions): the same key pair, another project of its user, named in
// X-Project-Id. A token belongs to one project and cannot switch.
//
// IMS has no "my projects" call for non-administrators: the page offers the projects this tab has
// used, the user's roles when the user is an administrator, and any project by name or ID.

import * as api from "../api.js";
import * as session from "../session.js";
import { busy, field, h, replace, say } from "../dom.js";

export async function renderSwitchProject(main, ctx) {
  const cred = session.credential();
  const me = session.who();
  if (cred.kind !== "access-key") {
    replace(main, h("h1", { text: "Switch project" }), h("p", { text: "A token belongs to one project. To work in another project, sign in with a token of that project or with an access key." }));
    return;
  }
  const slot = h("div", { class: "slot", id: "switch-messages" });
  const known = new Map(session.knownProjects().map((p) => [p.id, p.name]));
  if (me.is_admin) {
    try {
      const [users, projects] = await Promise.all([api.listUsers(), api.listProjects()]);
      const names = new Map(projects.map((p) => [p.id, p.name]));
      const user = users.find((u) => u.id === me.user.id);
      for (const r of (user && user.roles) || []) known.set(r.project_id, names.get(r.project_id) || r.project_id);
    } catch {
      /* the projects used so far are enough */
    }
  }
  if (ctx.signal.aborted) return;

  const switchTo = async (project, button) =>
    busy(button, "Switching…", async () => {
      const next = { ...cred, project };
      try {
        const who = await api.whoami(next);
        session.signIn(next, who);
        sessionStorage.removeItem("ims.console.after-signin");
        location.hash = "#/images";
      } catch (e) {
        say(slot, "error", e.status === 401 ? `This key cannot be used in that project. (The server said: ${e.message})` : api.explain(e));
      }
    });

  const list = h(
    "ul",
    { class: "project-list", id: "project-choices" },
    [...known].sort((a, b) => a[1].localeCompare(b[1])).map(([id, name]) => {
      const current = id === me.project.id;
      const b = h("button", { type: "button", class: current ? "btn" : "btn btn-primary", disabled: current, dataset: { project: id }, text: current ? `${name} (current)` : `Switch to ${name}` });
      b.addEventListener("click", () => switchTo(id, b));
      return h("li", {}, b, h("small", { class: "muted mono", text: ` ${id}` }));
    }),
  );
  const other = h("input", { type: "text", id: "switch-project-name", name: "project", autocomplete: "off", spellcheck: "false" });
  const go = h("button", { type: "submit", class: "btn", id: "switch-project-go", text: "Switch" });
  const form = h("form", { class: "card inline-form", id: "switch-form", novalidate: true }, h("h2", { text: "Another project" }), field("Project name or ID", other, "Your user needs a role in it."), h("div", { class: "actions" }, go));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const wanted = other.value.trim();
    if (!wanted) {
      say(slot, "error", "Name the project to switch to.");
      other.focus();
      return;
    }
    let id = wanted;
    try {
      id = (await api.lookupProject(wanted)).id;
    } catch (err) {
      if (err.status !== 404) return say(slot, "error", api.explain(err));
      return say(slot, "error", `There is no project named ${wanted}.`);
    }
    await switchTo(id, go);
  });
  replace(
    main,
    h("div", { class: "page-head" }, h("h1", { text: "Switch project" })),
    h("p", { class: "lead" }, "Signed in with access key ", h("span", { class: "mono", text: cred.access }), " in project ", h("strong", { text: me.project.name }), "."),
    slot,
    h("section", { class: "card", "aria-labelledby": "projects-title" }, h("h2", { id: "projects-title", text: "Projects" }), list),
    form,
  );
}
