// Onboarding pages (cloud/web/onboarding.py): the form shows the fields of the chosen kind and the
// sites of the chosen commune; a device's state follows the API without a reload; the bundle link
// is used once; decommissioning is enabled once the device id is typed. Everything works without it.
document.addEventListener("DOMContentLoaded", () => {
  const add = document.getElementById("add-form");
  if (add) {
    const kind = () => add.querySelector('input[name="kind"]:checked')?.value || "camera";
    const showKind = () => {
      for (const fs of add.querySelectorAll("fieldset.for-camera, fieldset.for-ap")) {
        fs.hidden = !fs.classList.contains("for-" + kind());
      }
    };
    for (const r of add.querySelectorAll('input[name="kind"]')) r.addEventListener("change", showKind);
    showKind();
  }
  for (const form of document.querySelectorAll("#add-form, #move-form")) {
    const commune = form.querySelector('select[name="commune"]');
    const site = form.querySelector('select[name="site"]');
    const filter = () => {
      for (const o of site.options) {
        if (o.dataset.commune) o.hidden = o.dataset.commune !== commune.value;
      }
      if (site.selectedOptions[0]?.hidden) site.value = "";
    };
    commune.addEventListener("change", filter);
    filter();
  }

  // As the server writes times (cloud/web/i18n.py): Vietnam's time, dd/mm/yyyy in Vietnamese.
  const localTime = (iso) => {
    const parts = {};
    const fmt = new Intl.DateTimeFormat("en-GB", {
      timeZone: "Asia/Ho_Chi_Minh", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    });
    for (const p of fmt.formatToParts(new Date(iso))) parts[p.type] = p.value;
    const time = `${parts.hour}:${parts.minute}:${parts.second}`;
    return document.documentElement.lang === "vi"
      ? `${parts.day}/${parts.month}/${parts.year} ${time}`
      : `${parts.year}-${parts.month}-${parts.day} ${time}`;
  };
  const badge = document.getElementById("device-state");
  if (badge) {
    const seen = document.getElementById("last-seen");
    const refresh = async () => {
      try {
        const r = await fetch(badge.dataset.url, { headers: { Accept: "application/json" }, cache: "no-store" });
        if (r.ok) {
          const d = await r.json();
          const label = badge.dataset["label" + d.state.replace(/(^|_)(\w)/g, (_, __, c) => c.toUpperCase())];
          badge.dataset.state = d.state;
          badge.className = "badge state-" + d.state;
          badge.textContent = label || d.state;
          const hint = document.getElementById("watch-hint");
          if (hint && (d.state === "up" || d.state === "decommissioned")) hint.hidden = true;
          if (seen && d.last_seen) seen.textContent = localTime(d.last_seen);
        }
      } catch (e) {
        // offline for a moment: try again next round
      }
      if (badge.dataset.state !== "decommissioned") setTimeout(refresh, 3000);
    };
    setTimeout(refresh, 2000);
  }

  const link = document.getElementById("bundle-link");
  if (link) {
    link.addEventListener("click", () => {
      setTimeout(() => {
        link.hidden = true;
        document.getElementById("bundle-once").hidden = true;
        document.getElementById("bundle-done").hidden = false;
      }, 500);
    });
  }

  const dec = document.getElementById("decommission-form");
  if (dec) {
    const input = dec.querySelector('input[name="confirm"]');
    const button = document.getElementById("decommission-button");
    const check = () => { button.disabled = input.value.trim() !== dec.dataset.device; };
    input.addEventListener("input", check);
    check();
  }
});
