"use strict";
// The session table: sort by any column, search id/name/user, filter by user, model, tag and
// errors, a page at a time. Rows come from the JSON block the page carries; every text goes in
// through textContent, never as markup.
(function () {
  const data = JSON.parse(document.getElementById("session-data").textContent);
  const at = Object.fromEntries(data.fields.map((field, i) => [field, i]));
  const rows = data.rows.map((values, i) => ({ values, texts: data.texts[i] }));
  const state = { sort: "cost_usd", descending: true, page: 0 };
  const $ = (id) => document.getElementById(id);
  const search = $("search"), size = $("page-size");
  const filters = { user: $("filter-user"), model: $("filter-model"), tag: $("filter-tag") };
  const lists = { user: "users", model: "models", tag: "tags" };

  for (const [name, select] of Object.entries(filters)) {
    const seen = new Set();
    for (const row of rows) for (const v of row.values[at[lists[name]]] || []) seen.add(v);
    for (const v of [...seen].sort()) select.append(new Option(v, v));
    select.addEventListener("change", () => { state.page = 0; draw(); });
  }
  $("filter-errors").addEventListener("change", () => { state.page = 0; draw(); });
  search.addEventListener("input", () => { state.page = 0; draw(); });
  size.addEventListener("change", () => { state.page = 0; draw(); });
  $("previous").addEventListener("click", () => { state.page -= 1; draw(); });
  $("next").addEventListener("click", () => { state.page += 1; draw(); });

  const head = document.querySelector("#session-table thead tr");
  for (const column of data.columns) {
    const th = document.createElement("th");
    th.textContent = column.header;
    th.dataset.field = column.field;
    th.tabIndex = 0;
    if (column.numeric) th.className = "num";
    const sort = () => {
      state.descending = state.sort === column.field ? !state.descending : column.numeric;
      state.sort = column.field;
      draw();
    };
    th.addEventListener("click", sort);
    th.addEventListener("keydown", (e) => { if (e.key === "Enter") sort(); });
    head.append(th);
  }

  function compare(a, b) {
    // Unknown values last whichever the direction; ties by session id, as `sessions list`.
    const i = at[state.sort], x = a.values[i], y = b.values[i];
    if (x === null || y === null) {
      if (x !== y) return x === null ? 1 : -1;
    } else if (x < y) return state.descending ? 1 : -1;
    else if (x > y) return state.descending ? -1 : 1;
    const p = a.values[at.session_id], q = b.values[at.session_id];
    return p < q ? -1 : p > q ? 1 : 0;
  }

  function wanted(row) {
    const v = row.values, query = search.value.trim().toLowerCase();
    if (query && ![v[at.session_id], v[at.session_name], v[at.user_id]]
        .some((text) => text !== null && String(text).toLowerCase().includes(query))) return false;
    for (const [name, select] of Object.entries(filters)) {
      if (select.value && !(v[at[lists[name]]] || []).includes(select.value)) return false;
    }
    const errors = $("filter-errors").value;
    if (errors === "with" && !(v[at.error_count] > 0)) return false;
    if (errors === "without" && v[at.error_count] > 0) return false;
    return true;
  }

  function draw() {
    const kept = rows.filter(wanted).sort(compare);
    const per = size.value === "all" ? Math.max(kept.length, 1) : Number(size.value);
    const pages = Math.max(1, Math.ceil(kept.length / per));
    state.page = Math.min(Math.max(state.page, 0), pages - 1);
    const first = state.page * per, shown = kept.slice(first, first + per);
    const body = document.querySelector("#session-table tbody");
    const fresh = document.createElement("tbody");
    for (const row of shown) fresh.append(line(row));
    body.replaceWith(fresh);
    for (const th of head.children) {
      th.setAttribute("aria-sort", th.dataset.field === state.sort
        ? (state.descending ? "descending" : "ascending") : "none");
    }
    const of = kept.length === rows.length ? "" : ` (of ${rows.length.toLocaleString("en")})`;
    $("shown").textContent = kept.length
      ? `Sessions ${(first + 1).toLocaleString("en")}–${(first + shown.length).toLocaleString("en")}`
        + ` of ${kept.length.toLocaleString("en")}${of}`
      : `No sessions match${of}`;
    $("page").textContent = `page ${state.page + 1} of ${pages}`;
    $("previous").disabled = state.page === 0;
    $("next").disabled = state.page >= pages - 1;
  }

  function line(row) {
    const tr = document.createElement("tr");
    const id = row.values[at.session_id];
    tr.dataset.sessionId = id;
    if (row.values[at.error_count] > 0) tr.className = "error";
    data.columns.forEach((column, i) => {
      const td = document.createElement("td");
      if (column.numeric) td.className = "num";
      const value = row.values[at[column.field]];
      td.dataset.field = column.field;
      td.dataset.value = JSON.stringify(value);
      const anchor = column.field === "session_id" && data.anchors[id];
      if (anchor) {
        const a = document.createElement("a");
        a.href = "#" + anchor;
        a.textContent = row.texts[i];
        td.append(a);
      } else {
        td.textContent = row.texts[i];
      }
      td.title = row.texts[i];
      tr.append(td);
    });
    return tr;
  }

  draw();
})();
