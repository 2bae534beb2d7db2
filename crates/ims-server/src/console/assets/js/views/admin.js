// Administration (admins only): projects, users, tokens and access keys of the built-in identity
// service (/identity/v1). Secrets (tokens, access key secrets) are shown once, when issued. The
// audit trail, store statistics and master keys are pages of their own modules under the same tabs.

import * as api from "../api.js";
import * as session from "../session.js";
import * as fmt from "../format.js";
import { busy, confirmDialog, field, h, replace, say, secretBox, select, toast } from "../dom.js";

const SECTIONS = [
  ["projects", "Projects", renderProjects],
  ["users", "Users", renderUsers],
  ["tokens", "Tokens", renderTokens],
  ["access-keys", "Access keys", renderAccessKeys],
];

/** Tokens issued from this page in this browser tab (IMS does not list tokens). Never secrets. */
const issuedTokens = [];

/** Every administration page, as tabs: these sections and the pages of their own modules. */
const TABS = [...SECTIONS.map(([id, label]) => [id, label]), ["audit", "Audit trail"], ["store", "Store statistics"], ["keys", "Master keys"]];

export async function renderAdmin(main, ctx) {
  const section = ctx.params[0];
  const [, , render] = SECTIONS.find(([id]) => id === section);
  await render(adminPage(main, section), ctx);
}

/** Draws the heading and tabs of administration page `section`; returns the element for its body. */
export function adminPage(main, section) {
  const [, label] = TABS.find(([id]) => id === section);
  const body = h("div", { id: `admin-${section}` });
  replace(
    main,
    h("div", { class: "page-head" }, h("h1", { text: `Administration: ${label}` })),
    h(
      "nav",
      { class: "tabs", "aria-label": "Administration" },
      h("ul", {}, TABS.map(([id, l]) => h("li", {}, h("a", { class: "tab", id: `admin-tab-${id}`, href: `#/admin/${id}`, "aria-current": id === section ? "page" : null, text: l })))),
    ),
    body,
  );
  return body;
}

const reloadPage = (ctx) => ctx.navigate(`/admin/${ctx.params[0]}`);

async function projectsById() {
  const projects = await api.listProjects();
  return { projects, byId: new Map(projects.map((p) => [p.id, p])) };
}

async function renderProjects(body, ctx) {
  const { projects } = await projectsById();
  const slot = h("div", { class: "slot" });
  const me = session.who();
  const name = h("input", { type: "text", id: "new-project-name", name: "name", required: true, maxlength: "255", autocomplete: "off" });
  const create = h("button", { type: "submit", class: "btn btn-primary", id: "create-project", text: "Create project" });
  const form = h("form", { class: "card inline-form", id: "project-form", novalidate: true }, h("h2", { text: "New project" }), field("Name", name), h("div", { class: "actions" }, create));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!name.value.trim()) {
      say(slot, "error", "Give the project a name.");
      name.focus();
      return;
    }
    await busy(create, "Creating…", async () => {
      try {
        const p = await api.createProject(name.value.trim());
        toast(`Created project ${p.name}.`);
        reloadPage(ctx);
      } catch (err) {
        say(slot, "error", api.explain(err));
      }
    });
  });
  const rows = projects.map((p) => {
    const del = h("button", { type: "button", class: "btn btn-small btn-danger", "aria-label": `Delete project ${p.name}`, text: "Delete", dataset: { deleteProject: p.id } });
    if (p.id === me.project.id) {
      del.disabled = true;
      del.title = "You are signed in to this project";
    }
    del.addEventListener("click", async () => {
      if (!(await confirmDialog({ title: `Delete project ${p.name}?`, body: "Only a project that owns no images can be deleted. Its users lose their role in it.", confirmLabel: "Delete project", danger: true }))) return;
      await busy(del, "Deleting…", async () => {
        try {
          await api.deleteProject(p.id);
          toast(`Deleted project ${p.name}.`);
          reloadPage(ctx);
        } catch (err) {
          say(slot, "error", api.explain(err));
        }
      });
    });
    return h("tr", { dataset: { project: p.name } }, h("td", { "data-label": "Name", text: p.name }), h("td", { "data-label": "ID", class: "mono wrap", text: p.id }), h("td", { "data-label": "Created", text: fmt.date(p.created_at) }), h("td", { "data-label": "" }, del));
  });
  replace(
    body,
    slot,
    h("div", { class: "table-wrap" }, h("table", { class: "images-table", id: "projects-table" }, h("caption", { class: "visually-hidden", text: "Projects" }), h("thead", {}, h("tr", {}, ["Name", "ID", "Created", "Actions"].map((t) => h("th", { scope: "col", text: t })))), h("tbody", {}, rows))),
    form,
  );
}

async function renderUsers(body, ctx) {
  const [{ projects, byId }, users] = await Promise.all([projectsById(), api.listUsers()]);
  const slot = h("div", { class: "slot" });
  const secret = h("div", { class: "slot", id: "new-user-token" });
  const name = h("input", { type: "text", id: "new-user-name", name: "name", required: true, maxlength: "255", autocomplete: "off" });
  const project = select({ id: "new-user-project", name: "project" }, projects.map((p) => [p.id, p.name]), session.projectId());
  const role = select({ id: "new-user-role", name: "role" }, [["member", "Member"], ["reader", "Reader"], ["admin", "Administrator"]], "member");
  const create = h("button", { type: "submit", class: "btn btn-primary", id: "create-user", text: "Create user" });
  const form = h("form", { class: "card", id: "user-form", novalidate: true }, h("h2", { text: "New user" }), field("Name", name), h("div", { class: "two" }, field("Project", project), field("Role", role)), h("div", { class: "actions" }, create));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!name.value.trim()) {
      say(slot, "error", "Give the user a name.");
      name.focus();
      return;
    }
    await busy(create, "Creating…", async () => {
      try {
        const created = await api.createUser(name.value.trim(), project.value, role.value);
        issuedTokens.push({ id: created.token.id, user: created.user.name, project: byId.get(created.token.project_id)?.name || created.token.project_id, created_at: created.token.created_at });
        const usersTable = body.querySelector("#users-table tbody");
        if (usersTable) usersTable.append(userRow({ ...created.user, roles: [{ project_id: created.user.project_id, role: created.user.role }] }, byId));
        replace(
          secret,
          h(
            "div",
            { class: "msg msg-success", role: "status" },
            h("p", { text: `Created ${created.user.name}. Its first token is shown only now: copy it and hand it over safely.` }),
            secretBox("Token", created.token.token),
          ),
        );
        name.value = "";
      } catch (err) {
        say(slot, "error", api.explain(err));
      }
    });
  });
  replace(
    body,
    slot,
    secret,
    h(
      "div",
      { class: "table-wrap" },
      h("table", { class: "images-table", id: "users-table" }, h("caption", { class: "visually-hidden", text: "Users" }), h("thead", {}, h("tr", {}, ["Name", "ID", "Roles", "Created"].map((t) => h("th", { scope: "col", text: t })))), h("tbody", {}, users.map((u) => userRow(u, byId)))),
    ),
    form,
  );
}

function userRow(u, byId) {
  const roles = (u.roles || []).map((r) => `${byId.get(r.project_id)?.name || r.project_id}: ${r.role}`).join(", ") || "none";
  return h("tr", { dataset: { user: u.name } }, h("td", { "data-label": "Name", text: u.name }), h("td", { "data-label": "ID", class: "mono wrap", text: u.id }), h("td", { "data-label": "Roles", text: roles }), h("td", { "data-label": "Created", text: fmt.date(u.created_at) }));
}

async function renderTokens(body, ctx) {
  const [{ projects, byId }, users] = await Promise.all([projectsById(), api.listUsers()]);
  const slot = h("div", { class: "slot" });
  const secret = h("div", { class: "slot", id: "new-token" });
  const user = select({ id: "token-user", name: "user" }, users.map((u) => [u.id, u.name]));
  const project = select({ id: "token-project", name: "project" }, projects.map((p) => [p.id, p.name]), session.projectId());
  const syncProject = () => {
    const u = users.find((x) => x.id === user.value);
    const first = u && u.roles && u.roles[0];
    if (first && !u.roles.some((r) => r.project_id === project.value)) project.value = first.project_id;
  };
  user.addEventListener("change", syncProject);
  syncProject();
  const create = h("button", { type: "submit", class: "btn btn-primary", id: "create-token", text: "Issue token" });
  const form = h(
    "form",
    { class: "card", id: "token-form", novalidate: true },
    h("h2", { text: "Issue a token" }),
    h("p", { class: "hint", text: "A token acts as the user in one project where the user has a role." }),
    h("div", { class: "two" }, field("User", user), field("Project", project)),
    h("div", { class: "actions" }, create),
  );
  const issuedList = h("tbody", {});
  const drawIssued = () =>
    replace(
      issuedList,
      issuedTokens.map((t) => {
        const b = h("button", { type: "button", class: "btn btn-small btn-danger", text: t.revoked ? "Revoked" : "Revoke", disabled: t.revoked, "aria-label": `Revoke token ${t.id}`, dataset: { revokeToken: t.id } });
        b.addEventListener("click", () => revoke(t.id, b));
        return h("tr", {}, h("td", { "data-label": "Token ID", class: "mono wrap", text: t.id }), h("td", { "data-label": "User", text: t.user }), h("td", { "data-label": "Project", text: t.project }), h("td", { "data-label": "" }, b));
      }),
    );
  const revoke = async (id, button) => {
    if (!(await confirmDialog({ title: "Revoke this token?", body: `Token ${id} stops working at once.`, confirmLabel: "Revoke", danger: true }))) return false;
    return busy(button, "Revoking…", async () => {
      try {
        await api.revokeToken(id);
        const t = issuedTokens.find((x) => x.id === id);
        if (t) t.revoked = true;
        toast(`Revoked token ${id}.`);
        drawIssued();
        return true;
      } catch (err) {
        say(slot, "error", api.explain(err));
        return false;
      }
    });
  };
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    await busy(create, "Issuing…", async () => {
      try {
        const t = await api.createToken(user.value, project.value);
        issuedTokens.push({ id: t.id, user: users.find((u) => u.id === t.user_id)?.name || t.user_id, project: byId.get(t.project_id)?.name || t.project_id });
        drawIssued();
        replace(secret, h("div", { class: "msg msg-success", role: "status" }, h("p", {}, "Issued token ", h("span", { class: "mono", id: "issued-token-id", text: t.id }), ". Its secret is shown only now:"), secretBox("Token", t.token)));
      } catch (err) {
        say(slot, "error", api.explain(err));
      }
    });
  });
  const revokeId = h("input", { type: "text", id: "revoke-token-id", name: "token", autocomplete: "off", spellcheck: "false" });
  const revokeButton = h("button", { type: "submit", class: "btn btn-danger", id: "revoke-token", text: "Revoke" });
  const revokeForm = h(
    "form",
    { class: "card inline-form", id: "revoke-form", novalidate: true },
    h("h2", { text: "Revoke a token" }),
    field("Token ID", revokeId, "The ID shown when the token was issued (not the secret)."),
    h("div", { class: "actions" }, revokeButton),
  );
  revokeForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const id = revokeId.value.trim();
    if (!id) {
      say(slot, "error", "Enter the ID of the token to revoke.");
      revokeId.focus();
      return;
    }
    if (await revoke(id, revokeButton)) revokeId.value = "";
  });
  drawIssued();
  replace(
    body,
    slot,
    secret,
    h("div", { class: "grid-2" }, form, revokeForm),
    h(
      "section",
      { class: "card", "aria-labelledby": "issued-title" },
      h("h2", { id: "issued-title", text: "Issued from this tab" }),
      h("p", { class: "hint", text: "IMS does not list existing tokens. Tokens issued here in this browser tab are listed so that you can revoke them." }),
      h("div", { class: "table-wrap" }, h("table", { class: "images-table", id: "issued-tokens" }, h("thead", {}, h("tr", {}, ["Token ID", "User", "Project", "Actions"].map((t) => h("th", { scope: "col", text: t })))), issuedList)),
    ),
  );
}

async function renderAccessKeys(body, ctx) {
  const [{ projects, byId }, users, keys] = await Promise.all([projectsById(), api.listUsers(), api.listAccessKeys()]);
  const usersById = new Map(users.map((u) => [u.id, u]));
  const slot = h("div", { class: "slot" });
  const secret = h("div", { class: "slot", id: "new-access-key" });
  const user = select({ id: "key-user", name: "user" }, users.map((u) => [u.id, u.name]));
  const project = select({ id: "key-project", name: "project" }, [["", "The user's first project"], ...projects.map((p) => [p.id, p.name])], "");
  const description = h("input", { type: "text", id: "key-description", name: "description", maxlength: "255", autocomplete: "off" });
  const create = h("button", { type: "submit", class: "btn btn-primary", id: "create-access-key", text: "Create access key" });
  const form = h("form", { class: "card", id: "access-key-form", novalidate: true }, h("h2", { text: "New access key" }), h("div", { class: "two" }, field("User", user), field("Project", project)), field("Description", description), h("div", { class: "actions" }, create));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    await busy(create, "Creating…", async () => {
      try {
        const k = await api.createAccessKey(user.value, project.value, description.value.trim());
        toast(`Created access key ${k.access}.`);
        const tbody = body.querySelector("#access-keys-table tbody");
        if (tbody) tbody.append(keyRow(k));
        replace(secret, h("div", { class: "msg msg-success", role: "status" }, h("p", {}, "Access key ", h("span", { class: "mono", text: k.access }), " created. Its secret key is shown only now:"), secretBox("Secret key (SK)", k.secret)));
      } catch (err) {
        say(slot, "error", api.explain(err));
      }
    });
  });
  const keyRow = (k) => {
    const b = h("button", { type: "button", class: "btn btn-small btn-danger", text: "Revoke", disabled: k.status !== "active", "aria-label": `Revoke access key ${k.access}` });
    b.addEventListener("click", async () => {
      if (!(await confirmDialog({ title: "Revoke this access key?", body: `Requests signed with ${k.access} stop working at once.`, confirmLabel: "Revoke", danger: true }))) return;
      await busy(b, "Revoking…", async () => {
        try {
          await api.revokeAccessKey(k.access);
          toast(`Revoked ${k.access}.`);
          reloadPage(ctx);
        } catch (err) {
          say(slot, "error", api.explain(err));
        }
      });
    });
    return h(
      "tr",
      { dataset: { access: k.access } },
      h("td", { "data-label": "Access key", class: "mono wrap", text: k.access }),
      h("td", { "data-label": "User", text: usersById.get(k.user_id)?.name || k.user_id }),
      h("td", { "data-label": "Project", text: byId.get(k.project_id)?.name || k.project_id || "—" }),
      h("td", { "data-label": "Description", text: k.description || "—" }),
      h("td", { "data-label": "Status", text: k.status }),
      h("td", { "data-label": "Created", text: fmt.date(k.created_at) }),
      h("td", { "data-label": "" }, b),
    );
  };
  replace(
    body,
    slot,
    secret,
    h(
      "div",
      { class: "table-wrap" },
      h("table", { class: "images-table", id: "access-keys-table" }, h("caption", { class: "visually-hidden", text: "Access keys" }), h("thead", {}, h("tr", {}, ["Access key", "User", "Project", "Description", "Status", "Created", "Actions"].map((t) => h("th", { scope: "col", text: t })))), h("tbody", {}, keys.map(keyRow))),
    ),
    keys.length ? null : h("p", { class: "muted", text: "No access keys yet." }),
    form,
  );
}
