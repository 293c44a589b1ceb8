// Ratchet's review page. Agent-written text only ever reaches the page through textContent or
// attribute values set from script: never innerHTML. State-changing requests carry the page's CSRF
// token in a header; the session cookie is HttpOnly and never read here.
"use strict";

(function () {
  const meta = (name) => (document.querySelector(`meta[name="${name}"]`) || {}).content || "";
  const CSRF = meta("ratchet-csrf");
  const VIEW = meta("ratchet-view");
  const PAGE = meta("ratchet-page");
  const FOLD_LINES = 40;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function flash(message, bad) {
    const box = document.getElementById("flash");
    if (!box) return;
    box.textContent = message;
    box.className = bad ? "bad" : "good";
  }

  async function post(url, data) {
    const res = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Ratchet-CSRF": CSRF },
      body: JSON.stringify(Object.assign({ view: VIEW }, data || {})),
    });
    let body = {};
    try { body = await res.json(); } catch (e) { body = { message: res.statusText }; }
    return { ok: res.ok, status: res.status, body: body };
  }

  // -- forms on the server-rendered pages (pin, unpin, demote, freeze, complain) ----------------
  function wireForms(root) {
    for (const form of root.querySelectorAll("form[data-post]")) {
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const data = {};
        for (const [k, v] of new FormData(form).entries()) if (v !== "") data[k] = v;
        const button = form.querySelector("button[type=submit]");
        if (button) button.disabled = true;
        const res = await post(form.dataset.post, data);
        flash(res.body.message || (res.ok ? "done" : "failed"), !res.ok);
        if (res.ok) setTimeout(() => location.reload(), 600);
        else if (button) button.disabled = false;
      });
    }
  }

  // -- help ---------------------------------------------------------------------------------------
  function toggleHelp() {
    const d = document.getElementById("help");
    if (!d) return;
    if (d.open) d.close(); else d.showModal();
  }
  for (const b of document.querySelectorAll("[data-help]")) b.addEventListener("click", toggleHelp);

  // -- the inbox ------------------------------------------------------------------------------------
  const list = document.getElementById("inbox");
  const items = new Map(); // id -> {data, node}
  let selected = null;

  function age(seconds) {
    if (seconds < 90) return `${Math.round(seconds)} s`;
    if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
    if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
    return `${Math.round(seconds / 86400)} d`;
  }

  function diffLine(line) {
    let cls = "ctx";
    if (line.startsWith("+++ ") || line.startsWith("--- ")) cls = "file";
    else if (line.startsWith("+")) cls = "add";
    else if (line.startsWith("-")) cls = "del";
    else if (line.startsWith("@@")) cls = "hunk";
    return el("span", { class: cls, text: line + "\n" });
  }

  function renderDiff(text, whole) {
    const lines = (text || "").split("\n");
    if (lines.length && lines[lines.length - 1] === "") lines.pop();
    const pre = el("pre", { class: whole ? "diff whole" : "diff", tabindex: 0 });
    const shown = lines.length > FOLD_LINES + 10 ? FOLD_LINES : lines.length;
    for (let i = 0; i < shown; i++) pre.append(diffLine(lines[i]));
    const wrap = el("div", { class: "diffwrap" }, pre);
    if (shown < lines.length) {
      const more = el("button", { type: "button", class: "fold", text: `show ${lines.length - shown} more lines` });
      more.addEventListener("click", () => {
        for (let i = shown; i < lines.length; i++) pre.append(diffLine(lines[i]));
        more.remove();
      });
      wrap.append(more);
    }
    return wrap;
  }

  function fact(label, value) {
    if (value === null || value === undefined || value === "") return null;
    return el("div", { class: "fact" }, el("span", { class: "k", text: label }), " ", el("span", { class: "v", text: String(value) }));
  }

  function removeItem(id, why) {
    const entry = items.get(id);
    if (!entry) return;
    items.delete(id);
    if (selected === id) selected = null;
    entry.node.classList.add("gone");
    if (why) entry.node.setAttribute("data-gone", why);
    entry.node.remove();
    updateCount();
  }

  function busy(node, on) {
    for (const b of node.querySelectorAll("button, input, textarea")) b.disabled = on;
  }

  async function approveItem(id) {
    const entry = items.get(id);
    if (!entry || entry.data.kind !== "draft" || entry.pending) return;
    entry.pending = true;
    busy(entry.node, true);
    const res = await post(`/api/drafts/${id}/approve`, Object.assign({ digest: entry.data.digest }, entry.whole ? { whole: entry.whole } : {}));
    entry.pending = false;
    // A draft of another origin is approved, not run: it comes back as waiting for its origin.
    if (res.ok) { flash(res.body.message); removeItem(id, "approved"); if (res.body.status === "approved") refresh(); return; }
    flash(res.body.message || "approval failed", true);
    if (res.status === 409 || res.status === 404 || res.status === 422) removeItem(id, "decided elsewhere");
    else busy(entry.node, false);
  }

  async function loadWhole(id) {
    const entry = items.get(id);
    if (!entry) return;
    const res = await fetch(`/api/drafts/${id}/whole`, { credentials: "same-origin" });
    let body = {};
    try { body = await res.json(); } catch (e) { body = { message: res.statusText }; }
    if (!res.ok) { flash(body.message || "could not load the whole diff", true); return; }
    const shown = entry.node.querySelector(".diffwrap");
    const full = renderDiff(body.diff, true);
    if (shown) shown.replaceWith(full); else entry.node.insertBefore(full, entry.node.querySelector(".actions"));
    entry.whole = body.digest;
    for (const n of entry.node.querySelectorAll(".whole-note, .whole-load")) n.remove();
    const approve = entry.node.querySelector("button.approve");
    if (approve) approve.disabled = false;
    full.before(el("p", { class: "whole-note", text: `The whole diff: ${body.lines} lines (digest ${body.digest}).` }));
  }

  function askReason(id) {
    const entry = items.get(id);
    if (!entry || (entry.data.kind !== "draft" && entry.data.kind !== "approved")) return;
    const box = entry.node.querySelector(".reject, .withdraw");
    box.hidden = false;
    box.querySelector("input").focus();
  }

  async function rejectItem(id, reason) {
    const entry = items.get(id);
    if (!entry || entry.pending) return;
    entry.pending = true;
    busy(entry.node, true);
    const res = await post(`/api/drafts/${id}/reject`, { reason: reason });
    entry.pending = false;
    busy(entry.node, false);
    flash(res.body.message || "rejection failed", !res.ok || res.body.status === "draft");
    if (res.ok && res.body.status !== "draft") removeItem(id, "rejected");
    else if (res.status === 409 || res.status === 404) removeItem(id, "decided elsewhere");
  }

  // An approval that waits for its origin: withdrawn as `ratchet reject` withdraws it, before the origin runs it.
  async function withdrawItem(id, reason) {
    const entry = items.get(id);
    if (!entry || entry.data.kind !== "approved" || entry.pending) return;
    entry.pending = true;
    busy(entry.node, true);
    const res = await post(`/api/drafts/${id}/withdraw`, { reason: reason });
    entry.pending = false;
    busy(entry.node, false);
    flash(res.body.message || "withdrawal failed", !res.ok || res.body.status === "approved");
    if (res.ok && res.body.status !== "approved") removeItem(id, "withdrawn");
    else if (res.status === 409 || res.status === 404) removeItem(id, "decided elsewhere");
  }

  async function resolveItem(id, option, note) {
    const entry = items.get(id);
    if (!entry || entry.pending) return;
    entry.pending = true;
    busy(entry.node, true);
    const res = await post(`/api/items/${id}/resolve`, { option: option, note: note });
    entry.pending = false;
    flash(res.body.message || "failed", !res.ok);
    if (res.ok) removeItem(id, "resolved");
    else busy(entry.node, false);
  }

  function renderItem(d) {
    const head = el("div", { class: "head" });
    if (d.kind === "draft") {
      head.append(el("input", { type: "checkbox", class: "pick", "aria-label": `select draft ${d.id}` }));
    }
    head.append(el("span", { class: `kind kind-${d.kind}`, text: d.kind === "approved" ? "approved, waiting for its origin" : d.kind }));
    if (d.blocking) head.append(el("span", { class: "blocking", text: "blocking" }));
    head.append(
      el("a", { class: "id", href: `/item/${d.id}`, text: `#${d.id}` }),
      el("span", { class: "summary", text: d.kind === "handoff" || !d.target ? d.summary : `${d.tool} ${d.target}` }),
    );
    if (d.size) head.append(el("span", { class: "size", text: d.size }));
    const facts = el("div", { class: "facts" },
      fact("waiting", age(d.age_s) + (d.waiting_on ? ` · on: ${d.waiting_on}` : "") + (d.queued_behind ? ` · ${d.queued_behind} queued behind` : "")),
      d.kind === "handoff" ? null : el("div", { class: "fact" }, el("span", { class: "k", text: "class" }), " ",
        el("a", { href: `/classes/${encodeURIComponent(d.action_class)}`, text: d.action_class }),
        d.class_level ? ` at ${d.class_level}` : "", d.level && d.level !== d.class_level ? `, this call: ${d.level}` : ""),
      d.kind === "approved" ? fact("waits for its origin", `host ${d.origin_host}, workspace ${d.origin_workspace}`) : null,
      fact("rule", d.rule),
      d.kind === "draft" ? fact("digest", d.digest) : null,
      ...(d.triggers || []).map((t) => fact(`trigger ${t.name}`, t.detail)),
      d.kind === "stopped" && !(d.triggers || []).length ? fact("why", d.summary) : null,
      fact("task", d.task),
      fact("intent", d.intent),
      fact("confidence", d.confidence === null || d.confidence === undefined ? null : Number(d.confidence).toFixed(2)),
      fact("tried", d.what_tried),
      fact("unsure about", d.uncertainty),
      d.reviewer ? fact("reviewer", `${d.reviewer.verdict} (risk ${d.reviewer.risk})${d.reviewer.reason ? ": " + d.reviewer.reason : ""}`) : null,
    );
    const node = el("li", { class: "item", tabindex: -1, "data-id": d.id, "data-kind": d.kind }, head, facts);
    if (d.preview) node.append(renderDiff(d.preview));
    if (d.kind === "draft" && d.hidden_lines) {
      // The preview stops at the display limit; approving runs all of it, so the whole diff comes first.
      const why = el("p", { class: "whole-note", text: `This preview leaves out ${d.hidden_lines} changed lines. Approving runs all of them: load the whole diff to approve.` });
      const load = el("button", { type: "button", class: "whole-load", text: "Load the whole diff" });
      load.addEventListener("click", () => loadWhole(d.id));
      node.append(why, load);
    }
    const actions = el("div", { class: "actions" });
    if (d.kind === "draft") {
      const reason = el("input", { name: "reason", required: true, placeholder: "why reject (required)", "aria-label": "reason" });
      const rejectBox = el("form", { class: "reject", hidden: true },
        reason, el("button", { type: "submit", class: "danger", text: "Reject" }));
      rejectBox.addEventListener("submit", (ev) => { ev.preventDefault(); if (reason.value.trim()) rejectItem(d.id, reason.value.trim()); });
      actions.append(
        el("button", { type: "button", class: "approve", text: "Approve", disabled: !!d.hidden_lines, title: d.hidden_lines ? "load the whole diff first" : null, onclick: () => approveItem(d.id) }),
        el("button", { type: "button", class: "reject-open", text: "Reject…", onclick: () => askReason(d.id) }),
        rejectBox,
      );
    } else if (d.kind === "approved") {
      // Decided already: only its origin runs it, so there is nothing to approve here; it can be withdrawn.
      const reason = el("input", { name: "reason", required: true, placeholder: "why withdraw (required)", "aria-label": "reason" });
      const withdrawBox = el("form", { class: "withdraw", hidden: true },
        reason, el("button", { type: "submit", class: "danger", text: "Withdraw" }));
      withdrawBox.addEventListener("submit", (ev) => { ev.preventDefault(); if (reason.value.trim()) withdrawItem(d.id, reason.value.trim()); });
      actions.append(
        el("button", { type: "button", class: "withdraw-open", text: "Withdraw…", onclick: () => askReason(d.id) }),
        withdrawBox,
      );
    } else {
      const form = el("form", { class: "resolve" });
      const opts = el("fieldset", { class: "options" }, el("legend", { text: "options" }));
      for (const o of d.options || []) {
        const input = el("input", { type: "radio", name: `opt-${d.id}`, value: o.name, checked: !!o.recommended });
        opts.append(el("label", { class: "option" }, input, " ", el("b", { text: o.name }), o.recommended ? " (recommended)" : "", el("small", { text: o.how ? ` ${o.how}` : "" })));
      }
      const note = el("textarea", { name: "note", rows: 2, placeholder: "a note for the agent", "aria-label": "note" });
      form.append(opts, note, el("button", { type: "submit", class: "resolve-btn", text: "Resolve" }));
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        const picked = form.querySelector("input[type=radio]:checked");
        resolveItem(d.id, picked ? picked.value : null, note.value.trim() || null);
      });
      actions.append(form);
    }
    node.append(actions);
    node.addEventListener("click", (ev) => { if (!ev.target.closest("button, a, input, textarea, label")) select(d.id); });
    return node;
  }

  // A class with GROUP_AT drafts waiting or more gets one row at the top: one decision answers all of it.
  const GROUP_AT = 3;
  let groupsShown = "";

  function draftsOf(name, reviewerApproved) {
    return [...items.values()]
      .filter((e) => e.data.kind === "draft" && e.data.action_class === name)
      .filter((e) => !reviewerApproved || (e.data.reviewer && e.data.reviewer.verdict === "approve"))
      .map((e) => e.data.id);
  }

  function renderGroups() {
    const box = document.getElementById("groups");
    if (!box) return;
    const counts = new Map();
    for (const e of items.values()) {
      if (e.data.kind === "draft") counts.set(e.data.action_class, (counts.get(e.data.action_class) || 0) + 1);
    }
    const flooded = [...counts].filter(([, n]) => n >= GROUP_AT);
    const shape = JSON.stringify(flooded.map(([name, n]) => [name, n, draftsOf(name, true).length]));
    if (shape === groupsShown) return; // unchanged: keep whatever the reviewer typed
    groupsShown = shape;
    box.replaceChildren();
    for (const [name, n] of flooded) {
      const reason = el("input", { name: "reason", required: true, placeholder: "why reject them all (required)", "aria-label": `reason to reject every ${name} draft` });
      const rejectForm = el("form", { class: "group-reject" }, reason,
        el("button", { type: "submit", class: "danger", text: `Reject all ${n}` }));
      rejectForm.addEventListener("submit", (ev) => { ev.preventDefault(); if (reason.value.trim()) answerClass(name, "reject", reason.value.trim()); });
      box.append(el("div", { class: "group", "data-class": name },
        el("div", { class: "group-head" }, el("b", { text: name }), ` · ${n} drafts waiting`),
        el("div", { class: "actions" },
          el("button", { type: "button", class: "approve group-approve", text: `Approve all ${n}`, onclick: () => answerClass(name, "approve", null) }),
          draftsOf(name, true).length ? el("button", { type: "button", class: "approve group-approve-reviewed", text: `Approve the ${draftsOf(name, true).length} the reviewer approved`, onclick: () => answerClass(name, "approve", null, true) }) : null,
          rejectForm),
        el("small", { class: "meta", text: "One decision for the whole class. Approved this way they run, but do not count as evidence that each was read." })));
    }
    box.hidden = flooded.length === 0;
  }

  async function answerClass(name, verb, reason, reviewerApproved) {
    const ids = draftsOf(name, reviewerApproved);
    if (!ids.length) return;
    const row = document.querySelector(`#groups .group[data-class="${CSS.escape(name)}"]`);
    if (row) busy(row, true);
    const res = await post(`/api/classes/${encodeURIComponent(name)}/drafts`, { action: verb, ids: ids, reason: reason });
    if (!res.ok) { flash(res.body.message || "failed", true); if (row) busy(row, false); return; }
    for (const r of res.body.results) if (r.status !== "error") removeItem(r.id, verb);
    const errors = res.body.results.filter((r) => r.status === "error");
    flash(res.body.message + (errors.length ? `; ${errors.map((r) => r.message).join("; ")}` : ""), errors.length > 0);
    refresh();
  }

  function updateCount() {
    renderGroups();
    const n = Math.max(items.size, loading ? total : 0);
    const count = document.getElementById("count");
    if (count) count.textContent = n === 1 ? "1 waiting" : `${n} waiting`;
    const empty = document.getElementById("empty");
    if (empty) empty.hidden = n !== 0;
    document.title = n ? `(${n}) Ratchet inbox` : "Ratchet inbox";
  }

  function select(id, scroll) {
    if (selected !== null && items.has(selected)) items.get(selected).node.classList.remove("selected");
    selected = id;
    const entry = items.get(id);
    if (!entry) return;
    entry.node.classList.add("selected");
    entry.node.focus({ preventScroll: !scroll });
    if (scroll) entry.node.scrollIntoView({ block: "nearest" });
  }

  // The first screen is rendered at once and the rest in slices between frames, so a long inbox
  // is usable as soon as its first items are; a refresh asked for meanwhile runs after it.
  const FIRST = 30;
  const SLICE = 60;
  let loading = null;
  let again = false;
  let total = 0;

  async function refresh() {
    if (loading) { again = true; return loading; }
    loading = load();
    try { await loading; } finally { loading = null; }
    if (again) { again = false; return refresh(); }
  }

  function focusOnce() {
    const focus = Number(list.dataset.focus || 0);
    if (focus && items.has(focus)) { select(focus, true); list.dataset.focus = ""; }
    else if (selected === null && items.size) select(items.keys().next().value, false);
  }

  async function load() {
    const res = await fetch(`/api/inbox?view=${encodeURIComponent(VIEW)}`, { credentials: "same-origin" });
    if (!res.ok) { flash(`could not load the inbox (${res.status})`, true); return; }
    const data = await res.json();
    total = data.items.length;
    const present = new Set(data.items.map((d) => d.id));
    for (const id of [...items.keys()]) if (!present.has(id)) removeItem(id, "decided elsewhere");
    const todo = data.items.filter((d) => !items.has(d.id));
    if (items.size === 0) {
      for (let i = 0; i < todo.length; i += i === 0 ? FIRST : SLICE) {
        const frag = document.createDocumentFragment();
        for (const d of todo.slice(i, i + (i === 0 ? FIRST : SLICE))) {
          const node = renderItem(d);
          items.set(d.id, { data: d, node: node });
          frag.append(node);
        }
        list.append(frag);
        updateCount();
        if (i === 0) focusOnce();
        if (i === 0) performance.mark("ratchet-inbox-usable");
        await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
      }
    } else {
      // New items go where the server's order puts them; items already shown keep their node (and
      // whatever the reviewer typed into it).
      let cursor = list.firstElementChild;
      for (const d of data.items) {
        const known = items.get(d.id);
        if (known && known.data.kind !== d.kind) {
          // Approved elsewhere for its origin: the same item, now waiting for its origin; redrawn.
          const node = renderItem(d);
          const atCursor = known.node === cursor;
          known.node.replaceWith(node);
          if (selected === d.id) node.classList.add("selected");
          items.set(d.id, { data: d, node: node });
          if (atCursor) cursor = node.nextElementSibling;
          continue;
        }
        if (known) {
          if (known.node === cursor) cursor = cursor.nextElementSibling;
          continue;
        }
        const node = renderItem(d);
        items.set(d.id, { data: d, node: node });
        list.insertBefore(node, cursor);
      }
    }
    updateCount();
    focusOnce();
  }

  function live() {
    if (!window.EventSource) { setInterval(refresh, 3000); return; }
    const source = new EventSource("/api/events");
    source.addEventListener("inbox", (ev) => {
      const data = JSON.parse(ev.data);
      const ids = data.ids;
      const approved = new Set(data.approved || []);
      const same = ids.length === items.size && ids.every((id) => items.has(id) && (items.get(id).data.kind === "approved") === approved.has(id));
      if (!same) refresh();
    });
  }

  async function bulk(verb) {
    const ids = [...items.values()].filter((e) => e.node.querySelector(".pick:checked")).map((e) => e.data.id);
    if (!ids.length) { flash("select drafts first (x, or the checkboxes)", true); return; }
    let reason = null;
    if (verb === "reject") {
      reason = window.prompt(`Reason for rejecting ${ids.length} drafts (required)`);
      if (!reason || !reason.trim()) return;
    }
    const res = await post("/api/drafts/bulk", { action: verb, ids: ids, reason: reason });
    if (!res.ok) { flash(res.body.message || "failed", true); return; }
    const done = res.body.results.filter((r) => r.status === "executed" || r.status === "rejected");
    for (const r of done) removeItem(r.id, verb);
    const rest = res.body.results.filter((r) => !(r.status === "executed" || r.status === "rejected"));
    flash(`${done.length} of ${ids.length} ${verb === "approve" ? "approved" : "rejected"}` + (rest.length ? `; ${rest.map((r) => r.message).join("; ")}` : ""), rest.length > 0);
  }

  function move(step) {
    const ids = [...list.querySelectorAll("li.item")].map((n) => Number(n.dataset.id));
    if (!ids.length) return;
    const at = ids.indexOf(selected);
    const next = at < 0 ? 0 : Math.min(ids.length - 1, Math.max(0, at + step));
    select(ids[next], true);
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const typing = ev.target.closest && ev.target.closest("input, textarea, select");
    if (typing) { if (ev.key === "Escape") ev.target.blur(); return; }
    if (ev.key === "?") { ev.preventDefault(); toggleHelp(); return; }
    if (!list) return;
    if (ev.key === "j") { ev.preventDefault(); move(1); }
    else if (ev.key === "k") { ev.preventDefault(); move(-1); }
    else if (ev.key === "a" && selected !== null) { ev.preventDefault(); approveItem(selected); }
    else if (ev.key === "r" && selected !== null) { ev.preventDefault(); askReason(selected); }
    else if (ev.key === "x" && selected !== null) {
      const pick = items.get(selected).node.querySelector(".pick");
      if (pick) pick.checked = !pick.checked;
    } else if (ev.key === "o" && selected !== null) {
      const fold = items.get(selected).node.querySelector(".fold");
      if (fold) fold.click();
    }
  });

  wireForms(document);
  if (list && PAGE === "inbox") {
    for (const b of document.querySelectorAll("[data-bulk]")) b.addEventListener("click", () => bulk(b.dataset.bulk));
    // The mark says when the inbox became usable (bench/web.py reads it).
    refresh().then(() => { performance.mark("ratchet-inbox-ready"); live(); });
  }
})();
