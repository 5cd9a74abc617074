// Small progressive enhancements; every page works without them.
document.addEventListener("DOMContentLoaded", () => {
  for (const box of document.querySelectorAll("input.select-all")) {
    box.addEventListener("change", () => {
      for (const cb of box.closest("form").querySelectorAll('input[name="event"]')) cb.checked = box.checked;
    });
  }
  const form = document.getElementById("export-form");
  if (form) {
    form.addEventListener("submit", (ev) => {
      if (!form.querySelector('input[name="event"]:checked')) {
        ev.preventDefault();
        alert(document.documentElement.lang === "vi" ? "Hãy chọn ít nhất một sự kiện." : "Select at least one event.");
      }
    });
  }
  // On a phone the filter panel starts folded (its summary counts the active filters), so the
  // events are on the first screen; without JavaScript it stays open.
  const panel = document.getElementById("filter-panel");
  if (panel && window.matchMedia("(max-width: 700px)").matches) panel.open = false;
  const here = location.pathname.split("/")[1];
  for (const a of document.querySelectorAll("nav a[data-nav]")) if (a.dataset.nav === here) a.classList.add("on");
});
