// rolegate portal: copy buttons and live status. Loaded from /assets (no inline script);
// every page works without it, only less conveniently.
"use strict";

document.addEventListener("click", (ev) => {
  const button = ev.target.closest("button.copy");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  const text = source.textContent;
  const done = (label) => {
    button.textContent = label;
    button.dataset.copied = label === "Copied" ? "true" : "false";
    setTimeout(() => { button.textContent = "Copy"; }, 4000);
  };
  if (navigator.clipboard && navigator.clipboard.writeText) {
    navigator.clipboard.writeText(text).then(() => done("Copied"), () => {
      selectText(source);
      done("Press Ctrl+C");
    });
  } else {
    selectText(source);
    done("Press Ctrl+C");
  }
});

function selectText(el) {
  const range = document.createRange();
  range.selectNodeContents(el);
  const sel = window.getSelection();
  sel.removeAllRanges();
  sel.addRange(range);
}

// An element with data-poll shows a status that changes on the server (an org being
// onboarded, a job running): ask every 2 s, and reload the page when it changes.
for (const el of document.querySelectorAll("[data-poll]")) {
  const url = el.dataset.poll;
  const tick = async () => {
    try {
      const res = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (res.redirected || res.status === 401) { window.location.reload(); return; }
      if (res.ok) {
        const body = await res.json();
        if (body.status && body.status !== el.dataset.current) {
          window.location.reload();
          return;
        }
      }
    } catch (_) { /* the next tick tries again */ }
    setTimeout(tick, 2000);
  };
  setTimeout(tick, 2000);
}
