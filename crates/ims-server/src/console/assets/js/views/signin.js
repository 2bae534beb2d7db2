// Sign in with a token or with an access key pair (AK/SK). The credential is checked with
// GET /identity/v1/auth before it is kept; an access key's secret never leaves the browser (each
// request is signed with it instead).

import * as api from "../api.js";
import * as session from "../session.js";
import { canSign } from "../signer.js";
import { busy, field, h, replace, say } from "../dom.js";

export async function renderSignIn(main) {
  document.body.classList.remove("signed-in");
  const reason = sessionStorage.getItem("ims.console.signin-reason");
  sessionStorage.removeItem("ims.console.signin-reason");

  const secretInput = (id, name) => h("input", { type: id === "token" || id === "secret-key" ? "password" : "text", name, id, autocomplete: "off", spellcheck: "false", autocapitalize: "off" });
  const token = secretInput("token", "token");
  const access = secretInput("access-key", "access");
  const secret = secretInput("secret-key", "secret");
  const project = secretInput("key-project", "project");
  const kindToken = h("input", { type: "radio", name: "kind", id: "kind-token", value: "token", checked: true });
  const kindKey = h("input", { type: "radio", name: "kind", id: "kind-access-key", value: "access-key" });
  const tokenFields = h("div", { id: "token-fields" }, field("Token", token, "An IMS token (X-Auth-Token). On first start the admin token is written to <data-dir>/admin-token."));
  const keyFields = h(
    "div",
    { id: "access-key-fields", hidden: true },
    field("Access key (AK)", access),
    field("Secret key (SK)", secret, "Kept in this tab only, to sign each request; it is never sent to the server."),
    field("Project ID (optional)", project, "Needed when the key's user has roles in several projects and the key is not bound to one."),
  );
  const errors = h("div", { id: "signin-error", class: "slot" });
  const submit = h("button", { type: "submit", class: "btn btn-primary", id: "sign-in", text: "Sign in" });
  const kind = () => (kindKey.checked ? "access-key" : "token");
  const showKind = () => {
    tokenFields.hidden = kind() !== "token";
    keyFields.hidden = kind() !== "access-key";
    say(errors);
  };
  kindToken.addEventListener("change", showKind);
  kindKey.addEventListener("change", showKind);

  const form = h(
    "form",
    { class: "card signin", id: "signin-form", novalidate: true },
    h(
      "fieldset",
      { class: "choice" },
      h("legend", { text: "Sign in with" }),
      h("div", { class: "check" }, kindToken, h("label", { for: "kind-token", text: "A token" })),
      h("div", { class: "check" }, kindKey, h("label", { for: "kind-access-key", text: "An access key pair (AK/SK)" })),
    ),
    tokenFields,
    keyFields,
    errors,
    h("div", { class: "actions" }, submit),
  );

  /** The credential the form describes, or null (after saying what is missing). */
  const readCredential = () => {
    if (kind() === "token") {
      const value = token.value.trim();
      if (!value) return fail("Enter a token to sign in.", token);
      return { kind: "token", token: value };
    }
    if (!canSign()) return fail("This browser cannot sign requests on this page: access keys need the console over HTTPS (or on this machine's loopback address). Sign in with a token instead.", access);
    if (!access.value.trim()) return fail("Enter the access key (AK).", access);
    if (!secret.value) return fail("Enter the secret key (SK).", secret);
    return { kind: "access-key", access: access.value.trim(), secret: secret.value, project: project.value.trim() || null };
  };
  const fail = (text, input) => {
    say(errors, "error", text);
    input.focus();
    return null;
  };

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    say(errors);
    const cred = readCredential();
    if (!cred) return;
    await busy(submit, "Signing in…", async () => {
      try {
        const who = await api.whoami(cred);
        session.signIn(cred, who);
        for (const input of [token, secret]) input.value = "";
        const after = sessionStorage.getItem("ims.console.after-signin");
        sessionStorage.removeItem("ims.console.after-signin");
        location.hash = after && after !== "#/signin" ? after : "#/images";
      } catch (err) {
        const bad = cred.kind === "token" ? token : /X-Project-Id/.test(err.message) ? project : access;
        say(errors, "error", refusal(cred, err));
        bad.setAttribute("aria-invalid", "true");
        bad.focus();
        if (bad.select) bad.select();
      }
    });
  });

  replace(
    main,
    h(
      "section",
      { class: "signin-page" },
      h("h1", { text: "Sign in to IMS" }),
      h("p", { class: "lead", text: "Manage images, sharing and quotas of your project." }),
      reason ? h("div", { class: "msg msg-info", role: "status", text: reason }) : null,
      form,
    ),
  );
  token.focus();
}

/** Why the server refused a credential, in plain words. */
function refusal(cred, err) {
  if (err.status !== 401) return `Sign-in failed: ${api.explain(err)}`;
  if (cred.kind === "token") return `Sign-in failed: this token was not accepted. It may be mistyped, revoked or expired. (The server said: ${err.message})`;
  if (/X-Project-Id is required/.test(err.message)) return "This key's user works in several projects: enter the ID of the project to sign in to.";
  if (/not valid in the project|no role in the project|unknown project/.test(err.message)) return `This key cannot be used in that project. (The server said: ${err.message})`;
  if (/X-Sdk-Date/.test(err.message)) return `Sign-in failed: this computer's clock is too far from the server's. (The server said: ${err.message})`;
  return `Sign-in failed: this access key pair was not accepted. The AK or SK may be mistyped, or the key revoked. (The server said: ${err.message})`;
}
