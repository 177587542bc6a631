// Certforge console: small progressive enhancements. Every page works without this file.
"use strict";

(function () {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const format = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
    timeZoneName: "short",
  });

  // Times: the server wrote UTC; show the viewer's own time zone instead.
  function localTimes(root) {
    root.querySelectorAll("time[data-local]").forEach(function (el) {
      const when = new Date(el.getAttribute("datetime"));
      if (!isNaN(when)) { el.textContent = format.format(when); el.title = el.getAttribute("datetime"); }
    });
    document.querySelectorAll("[data-tz-note]").forEach(function (el) {
      el.textContent = "Times are shown in your time zone (" + zone + ").";
    });
  }

  // The Request button opens the dialog in place (its link opens a page without JS).
  function dialogs() {
    document.querySelectorAll("a[data-opens]").forEach(function (link) {
      const dialog = document.getElementById(link.dataset.opens);
      if (!dialog || typeof dialog.showModal !== "function") { return; }
      link.addEventListener("click", function (event) {
        event.preventDefault();
        dialog.showModal();
        const first = dialog.querySelector("select, input:not([type=hidden]), textarea");
        if (first) { first.focus(); }
      });
      dialog.querySelectorAll("[data-close-dialog]").forEach(function (close) {
        close.addEventListener("click", function (event) { event.preventDefault(); dialog.close(); });
      });
    });
  }

  // Managed or CSR: show the fields of the chosen method only.
  function methodChoice() {
    document.querySelectorAll("form[data-request-form]").forEach(function (form) {
      function apply() {
        const chosen = form.querySelector("input[name=method]:checked");
        form.querySelectorAll("fieldset[data-method]").forEach(function (set) {
          const on = chosen && set.dataset.method === chosen.value;
          set.hidden = !on;
          set.disabled = !on;
        });
      }
      form.querySelectorAll("input[name=method]").forEach(function (radio) {
        radio.addEventListener("change", apply);
      });
      apply();
    });
  }

  // A pending request refreshes its live region until it is issued or failed.
  function liveRegions() {
    const live = document.getElementById("live");
    if (!live || !live.dataset.refresh) { return; }
    const every = parseInt(live.dataset.refresh, 10) || 2000;
    function poll() {
      fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) {
          if (response.redirected || !response.ok) { window.location.reload(); return null; }
          return response.text();
        })
        .then(function (html) {
          if (html === null) { return; }
          const next = new DOMParser().parseFromString(html, "text/html").getElementById("live");
          if (!next) { return; }
          live.innerHTML = next.innerHTML;
          localTimes(live);
          if (next.dataset.refresh) { window.setTimeout(poll, every); } else { delete live.dataset.refresh; }
        })
        .catch(function () { window.setTimeout(poll, every * 2); });
    }
    window.setTimeout(poll, every);
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    dialogs();
    methodChoice();
    liveRegions();
  });
})();
