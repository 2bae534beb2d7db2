// Sign in with a token. The token is checked with GET /identity/v1/auth before it is kept.

import * as api from "../api.js";
import * as session from "../session.js";
import { busy, field, h, replace, say } from "../dom.js";

export async function renderSignIn(main) {
  document.body.classList.remove("signed-in");
  const reason = sessionStorage.getItem("ims.console.signin-reason");
  sessionStorage.removeItem("ims.console.signin-reason");

  const token = h("input", {
    type: "password",
    name: "token",
    id: "token",
    required: true,
    autocomplete: "off",
    spellcheck: "false",
    autocapitalize: "off",
  });
  const errors = h("div", { id: "signin-error", class: "slot" });
  const submit = h("button", { type: "submit", class: "btn btn-primary", id: "sign-in", text: "Sign in" });
  const form = h(
    "form",
    { class: "card signin", id: "signin-form", novalidate: true },
    field("Token", token, "An IMS token (X-Auth-Token). On first start the admin token is written to <data-dir>/admin-token."),
    errors,
    h("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const value = token.value.trim();
    if (!value) {
      say(errors, "error", "Enter a token to sign in.");
      token.focus();
      return;
    }
    say(errors);
    await busy(submit, "Signing in…", async () => {
      const cred = { kind: "token", token: value };
      try {
        const who = await api.whoami(cred);
        session.signIn(cred, who);
        token.value = "";
        const after = sessionStorage.getItem("ims.console.after-signin");
        sessionStorage.removeItem("ims.console.after-signin");
        location.hash = after && after !== "#/signin" ? after : "#/images";
      } catch (err) {
        const text =
          err.status === 401
            ? `Sign-in failed: this token was not accepted. It may be mistyped, revoked or expired. (The server said: ${err.message})`
            : `Sign-in failed: ${api.explain(err)}`;
        say(errors, "error", text);
        token.setAttribute("aria-invalid", "true");
        token.focus();
        token.select();
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
