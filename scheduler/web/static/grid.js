// The stories grid refreshes itself while workers publish: every few seconds, and only while the tab is
// visible, it fetches the grid's cells as the page is filtered (table[data-live]) and replaces the cells
// (and the rows' headings: approve, edit, cancel) whose stamp changed. The page is never reloaded, so the
// filters, the scroll position and the keyboard focus stay; a cell with the focus or an open editor is
// left alone until the operator is done with it.
// New stories are not slipped in under the operator's eyes: a link offers them.
(() => {
  // The grid, or the "nothing here" line that stands in for it (then only new stories are looked for).
  const grid = document.querySelector("table.grid[data-live], p[data-live]");
  if (!grid) { return; }
  const EVERY = 4000;
  let timer = null;
  let busy = false;
  let stopped = false;

  function busyCell(cell) {
    return cell.contains(document.activeElement) || cell.querySelector("details[open]") !== null;
  }

  function apply(html) {
    const fresh = new DOMParser().parseFromString(html, "text/html");
    fresh.querySelectorAll("td[id^='cell-'], th[id^='head-']").forEach((cell) => {
      const shown = document.getElementById(cell.id);
      if (!shown || shown.dataset.stamp === cell.dataset.stamp || busyCell(shown)) { return; }
      shown.innerHTML = cell.innerHTML;
      shown.dataset.stamp = cell.dataset.stamp;
    });
    const known = new Set(Array.from(grid.querySelectorAll("tr[data-story]"), (row) => row.dataset.story));
    const added = Array.from(fresh.querySelectorAll("tr[data-story]")).some((row) => !known.has(row.dataset.story));
    const note = document.getElementById("grid-new");
    if (note && added) { note.hidden = false; }
  }

  async function refresh() {
    timer = null;
    if (busy || stopped || document.hidden) { return; }
    busy = true;
    try {
      const answer = await fetch(grid.dataset.live, { credentials: "same-origin", redirect: "manual" });
      if (answer.ok) {
        apply(await answer.text());
      } else if (answer.type === "opaqueredirect" || answer.status === 401 || answer.status === 403) {
        stopped = true;  // signed out: the next click leads to the login form
      }
    } catch (error) {
      // The server restarted or the network dropped: try again at the next turn.
    } finally {
      busy = false;
      schedule();
    }
  }

  function schedule() {
    if (!stopped && !document.hidden && timer === null) { timer = setTimeout(refresh, EVERY); }
  }

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      clearTimeout(timer);
      timer = null;
    } else {
      refresh();
    }
  });
  schedule();
})();
