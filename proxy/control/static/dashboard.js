// strangler dashboard: polls /-/stats and /-/audit, draws the tables and sparklines, and sends
// flips, rollbacks (of a resource or of a group) and rollout pauses, resumes and aborts to the
// admin API with the token the operator typed (sessionStorage only).
"use strict";

(function () {
  const POLL_MS = 3000;
  const TOKEN_KEY = "strangler.adminToken";
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  const rows = new Map();
  const groupRows = new Map();
  const cards = new Map();
  let backendNames = [];
  let pending = null;
  let timer = null;

  // -- formatting ------------------------------------------------------------------------------

  function rate(value) {
    if (value === null || value === undefined) return "—";
    return value < 10 ? value.toFixed(1) : Math.round(value).toString();
  }
  function percent(value) {
    return value === null || value === undefined ? "—" : (value * 100).toFixed(1) + "%";
  }
  function millis(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const ms = seconds * 1000;
    return (ms < 10 ? ms.toFixed(1) : Math.round(ms).toString()) + " ms";
  }
  function when(iso) {
    return iso ? iso.replace("T", " ").replace(/\.\d+Z$|Z$/, "") : "—";
  }
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }
  function badge(name) {
    const index = backendNames.indexOf(name);
    return el("span", "badge" + (index >= 0 ? " b" + (index % 4) : ""), name);
  }

  // -- messages --------------------------------------------------------------------------------

  function showNotice(text) {
    $("error").hidden = true;
    $("notice").textContent = text;
    $("notice").hidden = false;
  }
  function showError(text) {
    $("notice").hidden = true;
    $("error").textContent = text;
    $("error").hidden = false;
  }

  // -- the routing table facts -----------------------------------------------------------------

  function renderTable(table) {
    setText($("t-version"), String(table.version));
    setText($("t-source"), table.source);
    setText($("t-sha"), table.sha256);
    setText($("t-loaded"), when(table.loaded_at));
    setText($("t-default"), table.default);
    const error = table.last_reload_error;
    setText($("t-error"), error || "none");
    $("t-error").classList.toggle("bad", Boolean(error));
  }

  // -- resources -------------------------------------------------------------------------------

  function resourceRow(resource) {
    const row = el("tr");
    row.dataset.resource = resource.resource;
    const cells = {};
    for (const name of ["name", "stage", "ready", "backend", "rate", "errors", "canary", "shadow",
      "fallback", "guard", "rollout", "actions"]) {
      cells[name] = el(name === "name" ? "th" : "td", "c-" + name);
      row.appendChild(cells[name]);
    }
    cells.name.scope = "row";
    cells.rate.classList.add("num");
    cells.errors.classList.add("num");
    if (resource.listed) {
      cells.name.appendChild(el("span", "resource-name", resource.resource));
      cells.group = el("span", "small group-tag");
      cells.name.appendChild(cells.group);
      const select = el("select");
      select.setAttribute("aria-label", "New backend for " + resource.resource);
      const flip = el("button", "primary", "Flip");
      flip.type = "button";
      flip.dataset.action = "flip";
      flip.addEventListener("click", () => askFlip(resource.resource, select.value));
      const undo = el("button", "", "Rollback");
      undo.type = "button";
      undo.dataset.action = "rollback";
      undo.addEventListener("click", () => askRollback(resource.resource));
      cells.actions.classList.add("actions");
      cells.actions.append(select, flip, undo);
      cells.select = select;
      cells.plan = rolloutControls(resource.resource, cells.rollout);
    } else {
      cells.name.appendChild(el("span", "resource-name", resource.resource));
      cells.name.appendChild(el("span", "small", "resources not in the table"));
      cells.actions.appendChild(el("span", "muted", "—"));
    }
    return { row, cells };
  }

  function renderResources(resources) {
    const body = document.querySelector("#resources tbody");
    const seen = new Set();
    resources.forEach((resource, index) => {
      let entry = rows.get(resource.resource);
      if (!entry) {
        entry = resourceRow(resource);
        rows.set(resource.resource, entry);
      }
      seen.add(resource.resource);
      if (body.children[index] !== entry.row) body.insertBefore(entry.row, body.children[index] || null);
      fillResource(entry, resource);
    });
    for (const [name, entry] of rows) {
      if (!seen.has(name)) {
        entry.row.remove();
        rows.delete(name);
      }
    }
  }

  function fillResource(entry, resource) {
    const { cells } = entry;
    const backend = [badge(resource.backend)];
    const overrides = Object.entries(resource.methods);
    if (overrides.length) {
      backend.push(el("span", "small", overrides.map(([m, b]) => m + " → " + b).join(", ")));
    }
    cells.backend.replaceChildren(...backend);
    setText(cells.stage, resource.stage || "—");
    cells.ready.replaceChildren(...readyText(resource.ready));
    setText(cells.rate, rate(resource.requests_per_second));
    setText(cells.errors, percent(resource.error_rate));
    cells.errors.classList.toggle("bad-value", (resource.error_rate || 0) > 0.01);
    setText(cells.canary, resource.canary
      ? resource.canary.percent + "% → " + resource.canary.backend : "—");
    cells.shadow.replaceChildren(...shadowText(resource.shadow));
    cells.fallback.replaceChildren(...fallbackText(resource.fallback));
    const guard = resource.guard;
    const state = el("span", "state " + guard.state.replace(" ", "-"), guard.state);
    const guardParts = [state];
    if (guard.rollbacks > 0) guardParts.push(el("span", "small", guard.rollbacks + " rollback(s)"));
    const figures = guard.figures;
    if (figures && figures.requests > 0) {
      const p99 = figures.p99_ms === null ? "—" : Math.round(figures.p99_ms) + " ms";
      guardParts.push(el("span", "small",
        figures.requests + " req, " + percent(figures.error_rate) + " err, p99 " + p99));
    }
    if (guard.would_roll_back) guardParts.push(el("span", "small bad-value", "would roll back"));
    const why = guard.would_roll_back || (guard.fired && guard.fired.time + " " + guard.fired.reason)
      || guard.error;
    state.title = why || "";
    cells.guard.replaceChildren(...guardParts);
    if (cells.plan) fillRollout(cells.plan, resource.rollout);
    else setText(cells.rollout, "—");
    if (cells.select) fillSelect(cells.select, resource.backend);
    if (cells.group) setText(cells.group, resource.group ? "group " + resource.group : "");
  }

  // -- groups: each with its members' backends, flipped or rolled back as one -----------------

  function groupRow(group) {
    const row = el("tr");
    row.dataset.group = group.group;
    const name = el("th", "c-name");
    name.scope = "row";
    name.appendChild(el("span", "resource-name", group.group));
    const members = el("td", "c-members");
    const actions = el("td", "c-actions actions");
    const select = el("select");
    select.setAttribute("aria-label", "New backend for group " + group.group);
    const flip = el("button", "primary", "Flip group");
    flip.type = "button";
    flip.dataset.action = "flip-group";
    flip.addEventListener("click", () => askGroupFlip(group.group, select.value));
    const undo = el("button", "", "Rollback group");
    undo.type = "button";
    undo.dataset.action = "rollback-group";
    undo.addEventListener("click", () => askGroupRollback(group.group));
    actions.append(select, flip, undo);
    row.append(name, members, actions);
    return { row, members, select };
  }

  function renderGroups(groups) {
    $("groups-section").hidden = groups.length === 0;
    const body = document.querySelector("#groups tbody");
    const seen = new Set();
    groups.forEach((group, index) => {
      let entry = groupRows.get(group.group);
      if (!entry) {
        entry = groupRow(group);
        groupRows.set(group.group, entry);
      }
      seen.add(group.group);
      if (body.children[index] !== entry.row) body.insertBefore(entry.row, body.children[index] || null);
      entry.members.replaceChildren(...group.members.map((member) => {
        const box = el("span", "member");
        box.dataset.member = member.resource;
        box.append(document.createTextNode(member.resource + " "), badge(member.backend));
        return box;
      }));
      const backends = new Set(group.members.map((member) => member.backend));
      fillSelect(entry.select, backends.size === 1 ? [...backends][0] : null);
    });
    for (const [name, entry] of groupRows) {
      if (!seen.has(name)) {
        entry.row.remove();
        groupRows.delete(name);
      }
    }
  }

  // The rollout plan: "step 3/6 · 25% · 2m10s on step · running", and the buttons its state
  // allows (POST /-/routes/{resource}/rollout/{pause|resume|abort}, after a confirmation).
  const PLAN_ACTIONS = { pause: ["running"], resume: ["paused"], abort: ["running", "paused"] };

  function rolloutControls(resource, cell) {
    const text = el("span", "plan-text");
    const state = el("span", "state");
    const buttons = {};
    const box = el("span", "plan-actions");
    for (const action of Object.keys(PLAN_ACTIONS)) {
      const label = action[0].toUpperCase() + action.slice(1);
      const button = el("button", action === "abort" ? "danger" : "", label);
      button.type = "button";
      button.dataset.action = "rollout-" + action;
      button.hidden = true;
      button.addEventListener("click", () => askRollout(resource, action));
      buttons[action] = button;
      box.appendChild(button);
    }
    cell.append(text, state, box);
    return { text, state, buttons, rollout: null };
  }

  function fillRollout(plan, rollout) {
    plan.rollout = rollout;
    const parts = rollout ? ["step " + rollout.step + "/" + rollout.steps, rollout.current] : [];
    if (rollout && rollout.seconds_on_step !== null) {
      parts.push(duration(rollout.seconds_on_step) + " on step");
    }
    setText(plan.text, rollout ? parts.join(" · ") + " · " : "—");
    setText(plan.state, rollout ? rollout.state : "");
    plan.state.className = "state plan-" + (rollout ? rollout.state : "none");
    plan.state.title = rollout ? "to " + rollout.to + ": " + rollout.labels.join(", ") +
      (rollout.since ? "; step since " + when(rollout.since) + " UTC" : "") : "";
    for (const [action, states] of Object.entries(PLAN_ACTIONS)) {
      plan.buttons[action].hidden = !rollout || !states.includes(rollout.state);
    }
  }

  function duration(seconds) {
    const total = Math.floor(seconds);
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = total % 60;
    if (h) return h + "h" + String(m).padStart(2, "0") + "m";
    return m ? m + "m" + String(s).padStart(2, "0") + "s" : s + "s";
  }

  // The readiness verdict (GET /-/ready/{resource}): ready or not, the failed checks as text.
  function readyText(ready) {
    if (!ready) return [el("span", "muted", "—")];
    const failed = ready.checks.filter((check) => check.result === "fail");
    const verdict = el("span", ready.ready ? "ok-value" : "bad-value",
      ready.ready ? "ready" : "not ready");
    verdict.title = ready.checks.map((check) => check.name + ": " + check.text).join("\n");
    const parts = [verdict];
    for (const check of failed) parts.push(el("span", "small", check.name + ": " + check.text));
    return parts;
  }

  function shadowText(shadow) {
    const parts = [];
    if (shadow.comparisons > 0) {
      parts.push(el("span", shadow.match_rate < 0.99 ? "bad-value" : "", percent(shadow.match_rate)));
      parts.push(el("span", "small", "of " + shadow.comparisons + " compared"));
    } else {
      parts.push(el("span", shadow.configured ? "" : "muted", shadow.configured ? "no data" : "—"));
    }
    if (shadow.worst) {
      const severe = shadow.worst === "status" || shadow.worst === "schema";
      parts.push(el("span", "shadow-worst " + (severe ? "bad-value" : "small"), "worst: " + shadow.worst));
    }
    if (shadow.configured) {
      const writes = shadow.writes ? ", writes dry-run" : "";
      parts.push(el("span", "small", shadow.percent + "% → " + shadow.backend + writes));
    }
    return parts;
  }

  function fallbackText(fallback) {
    if (!fallback.configured && fallback.count === 0) return [el("span", "muted", "—")];
    const parts = [el("span", "", String(fallback.count))];
    if (fallback.configured) {
      parts.push(el("span", "small", "→ " + fallback.backend + " on " + fallback.on.join(", ")));
    }
    return parts;
  }

  function fillSelect(select, current) {
    const choices = backendNames.filter((name) => name !== current);
    const signature = choices.join(",");
    if (select.dataset.choices === signature) return;
    const keep = select.value;
    select.replaceChildren(...choices.map((name) => {
      const option = el("option", "", name);
      option.value = name;
      return option;
    }));
    if (choices.includes(keep)) select.value = keep;
    select.dataset.choices = signature;
  }

  // -- backends --------------------------------------------------------------------------------

  function backendCard(name) {
    const card = el("article", "card");
    card.dataset.backend = name;
    const head = el("header");
    head.append(badge(name), el("span", "url"));
    const figures = el("dl", "figures");
    const values = {};
    for (const [key, label] of [["rate", "req/s"], ["errors", "5xx"], ["p50", "p50"],
      ["p99", "p99"], ["inflight", "in flight"]]) {
      const box = el("div");
      values[key] = el("dd", "f-" + key, "—");
      box.append(el("dt", "", label), values[key]);
      figures.appendChild(box);
    }
    const charts = el("div", "charts");
    const spark = {};
    for (const [key, label] of [["rate", "requests/s"], ["errors", "5xx ratio"],
      ["latency", "latency p50 / p99"]]) {
      const figure = el("figure", "chart");
      const svg = document.createElementNS(SVG, "svg");
      svg.setAttribute("class", "spark");
      svg.setAttribute("viewBox", "0 0 200 44");
      svg.setAttribute("preserveAspectRatio", "none");
      svg.setAttribute("role", "img");
      figure.append(el("figcaption", "", label), svg);
      charts.appendChild(figure);
      spark[key] = svg;
    }
    card.append(head, figures, charts);
    return { card, head, values, spark };
  }

  function renderBackends(backends, historySeconds) {
    const box = $("backends");
    backends.forEach((backend, index) => {
      let entry = cards.get(backend.backend);
      if (!entry) {
        entry = backendCard(backend.backend);
        cards.set(backend.backend, entry);
      }
      if (box.children[index] !== entry.card) box.insertBefore(entry.card, box.children[index] || null);
      setText(entry.head.querySelector(".url"), backend.url || "not in the table");
      setText(entry.values.rate, rate(backend.requests_per_second));
      setText(entry.values.errors, percent(backend.error_rate));
      setText(entry.values.p50, millis(backend.p50_seconds));
      setText(entry.values.p99, millis(backend.p99_seconds));
      setText(entry.values.inflight, String(Math.round(backend.in_flight)));
      const s = backend.series;
      const span = Math.round(historySeconds);
      sparkline(entry.spark.rate, [s.requests_per_second], "",
        "Requests per second of " + backend.backend + " over the last " + span + " s");
      sparkline(entry.spark.errors, [s.error_rate], "errors",
        "5xx ratio of " + backend.backend + " over the last " + span + " s", 0.05);
      sparkline(entry.spark.latency, [s.p99_seconds, s.p50_seconds], "",
        "Latency p99 and p50 of " + backend.backend + " over the last " + span + " s");
    });
    const names = new Set(backends.map((b) => b.backend));
    for (const [name, entry] of cards) {
      if (!names.has(name)) {
        entry.card.remove();
        cards.delete(name);
      }
    }
  }

  // Draws each series (the first one emphasised, with an area) on a shared scale from 0 to the
  // largest value (at least `floor`); null values leave gaps, a lone point is drawn as a dot.
  function sparkline(svg, series, kind, label, floor) {
    const width = 200;
    const height = 44;
    const values = series.flat().filter((v) => v !== null);
    const top = Math.max(floor || 0, ...values, 1e-9);
    const count = Math.max(...series.map((s) => s.length), 2);
    const x = (i) => ((i * width) / (count - 1)).toFixed(1);
    const y = (v) => (height - 3 - (v / top) * (height - 6)).toFixed(1);
    const nodes = [];
    const add = (d, className) => {
      const path = document.createElementNS(SVG, "path");
      path.setAttribute("d", d);
      path.setAttribute("class", className);
      path.setAttribute("vector-effect", "non-scaling-stroke");
      nodes.push(path);
    };
    series.forEach((points, n) => {
      for (const segment of segments(points)) {
        const line = segment.map(([i, v], k) => (k ? "L" : "M") + x(i) + " " + y(v)).join("");
        if (n === 0) {
          const first = segment[0][0];
          const last = segment[segment.length - 1][0];
          add(line + "L" + x(last) + " " + height + "L" + x(first) + " " + height + "Z",
            "area " + kind);
        }
        add(segment.length > 1 ? line : line + "l0.5 0",
          "line " + kind + (n > 0 ? " secondary" : "") + (segment.length > 1 ? "" : " dot"));
      }
    });
    const title = document.createElementNS(SVG, "title");
    title.textContent = label;
    svg.setAttribute("aria-label", label);
    svg.replaceChildren(title, ...nodes);
  }

  function segments(points) {
    const found = [];
    let current = [];
    points.forEach((v, i) => {
      if (v === null) {
        if (current.length) found.push(current);
        current = [];
      } else {
        current.push([i, v]);
      }
    });
    if (current.length) found.push(current);
    return found;
  }

  // -- audit -----------------------------------------------------------------------------------

  function renderAudit(entries) {
    const body = document.querySelector("#audit tbody");
    body.replaceChildren(...entries.map((entry) => {
      const row = el("tr");
      const move = el("td");
      if (entry.group) {
        const moved = Object.entries(entry.members || {});
        move.append(...moved.map(([name, m]) => {
          const box = el("span", "member", name + ": ");
          box.append(badge(m.from), document.createTextNode(" → "), badge(m.to));
          return box;
        }));
        if (!moved.length) move.appendChild(el("span", "muted", "—"));
      } else {
        move.append(badge(entry.from), document.createTextNode(" → "), badge(entry.to));
      }
      const what = entry.group ? "group " + entry.group : entry.resource;
      row.append(el("td", "", when(entry.time)), el("td", "", entry.action),
        el("td", "resource-name", what), move, el("td", "", entry.user),
        el("td", "", entry.reason || ""));
      return row;
    }));
    $("audit-empty").hidden = entries.length > 0;
  }

  // -- polling ---------------------------------------------------------------------------------

  async function getJSON(url) {
    const response = await fetch(url, { cache: "no-store", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(url + ": HTTP " + response.status);
    return response.json();
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      const [stats, audit] = await Promise.all([getJSON("stats"), getJSON("audit?limit=20")]);
      backendNames = stats.backends.map((b) => b.backend);
      renderTable(stats.table);
      renderResources(stats.resources);
      renderGroups(stats.groups || []);
      setText($("progress"), stats.progress ? "Progress: " + stats.progress.text : "");
      renderBackends(stats.backends, stats.history_seconds);
      renderAudit(audit.entries);
      setText($("window-hint"), "figures over the last " + stats.window_seconds + " s, charts over " +
        stats.history_seconds / 60 + " min in steps of " + stats.step_seconds + " s");
      setText($("updated"), "Updated " + when(stats.generated_at) + " UTC");
      $("updated").classList.remove("stale");
      document.body.dataset.loaded = "true";
    } catch (error) {
      setText($("updated"), "Cannot reach the proxy: " + error.message);
      $("updated").classList.add("stale");
    }
    timer = setTimeout(refresh, POLL_MS);
  }

  // -- changes ---------------------------------------------------------------------------------

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  function showTokenStatus() {
    const set = Boolean(token());
    setText($("token-status"), set ? "Token set for this tab."
      : "No token entered: flips, rollbacks and rollout changes will be refused.");
    $("token-status").classList.toggle("set", set);
  }

  function ask(text, run) {
    pending = run;
    $("confirm-text").textContent = text;
    $("confirm").hidden = false;
    $("confirm-yes").focus();
  }

  function askFlip(resource, backend) {
    const current = rows.get(resource);
    const from = current ? current.row.querySelector(".c-backend .badge").textContent : "?";
    if (!backend) return showError("No other backend to flip " + resource + " to.");
    ask("Flip " + resource + " from " + from + " to " + backend + "?", () =>
      change("PUT", "routes/" + encodeURIComponent(resource), { backend: backend }));
  }

  function askRollback(resource) {
    ask("Roll back " + resource + " to its backend before its last flip (or the default)?", () =>
      change("POST", "routes/" + encodeURIComponent(resource) + "/rollback", {}));
  }

  function askGroupFlip(group, backend) {
    if (!backend) return showError("No backend to flip group " + group + " to.");
    ask("Flip every member of group " + group + " to " + backend + "?", () =>
      change("POST", "flip", { group: group, backend: backend }));
  }

  function askGroupRollback(group) {
    ask("Roll back group " + group + ": each member to its backend before the group's last flip?",
      () => change("POST", "rollback", { group: group }));
  }

  function askRollout(resource, action) {
    const entry = rows.get(resource);
    const plan = entry ? entry.cells.plan.rollout : null;
    const at = plan ? " (step " + plan.step + "/" + plan.steps + " · " + plan.current + ")" : "";
    const verb = action[0].toUpperCase() + action.slice(1);
    ask(verb + " the rollout of " + resource + at + "?", () =>
      change("POST", "routes/" + encodeURIComponent(resource) + "/rollout/" + action, {}));
  }

  async function change(method, url, body) {
    if (!token()) {
      showError("Enter the admin token first.");
      $("token").focus();
      return;
    }
    body.reason = $("reason").value;
    try {
      const response = await fetch(url, {
        method: method,
        headers: { "Authorization": "Bearer " + token(), "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      const answer = await response.json().catch(() => null);
      if (!response.ok) {
        const message = answer && answer.message ? answer.message : "HTTP " + response.status;
        const details = answer && answer.errors && answer.errors.length ? "\n" + answer.errors.join("\n") : "";
        showError(message + details);
      } else if (answer.group !== undefined) {
        const moved = Object.entries(answer.members).map(([name, m]) => name + " " + m.from + " → " + m.to);
        showNotice(answer.action + ": group " + answer.group + ": " +
          (moved.length ? moved.join(", ") : "nothing changed"));
      } else if (!answer.changed) {
        showNotice(answer.resource + " already goes to " + answer.to + ": nothing changed.");
      } else {
        showNotice(answer.action + ": " + answer.resource + " " + answer.from + " → " + answer.to);
      }
    } catch (error) {
      showError("The request failed: " + error.message);
    }
    await refresh();
  }

  function setup() {
    $("token").value = token();
    showTokenStatus();
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("token").value.trim();
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      else sessionStorage.removeItem(TOKEN_KEY);
      showTokenStatus();
    });
    $("forget").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      $("token").value = "";
      showTokenStatus();
    });
    $("confirm-yes").addEventListener("click", () => {
      const run = pending;
      pending = null;
      $("confirm").hidden = true;
      if (run) run();
    });
    const cancel = () => {
      pending = null;
      $("confirm").hidden = true;
    };
    $("confirm-no").addEventListener("click", cancel);
    $("confirm").addEventListener("keydown", (event) => {
      if (event.key === "Escape") cancel();
    });
    refresh();
  }

  setup();
})();
