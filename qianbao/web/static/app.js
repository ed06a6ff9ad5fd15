// Qianbao: the few things a page needs script for. Every form also works without it.
"use strict";

// Calling-code picker: filter the options by English or Chinese name, code or region.
function setUpPicker() {
  const search = document.getElementById("country-search");
  const select = document.getElementById("country");
  if (!search || !select) return;
  search.hidden = false;
  search.addEventListener("input", () => {
    const query = search.value.trim().toLowerCase().replace(/^\+/, "+");
    let firstMatch = null;
    for (const option of select.options) {
      const match = !query || option.dataset.search.includes(query);
      option.hidden = !match;
      if (match && !firstMatch) firstMatch = option;
    }
    if (firstMatch && select.selectedOptions[0] && select.selectedOptions[0].hidden) {
      firstMatch.selected = true;
    }
  });
}

// Resend button: count down to when the server will accept another request.
function setUpResend() {
  const button = document.getElementById("resend");
  if (!button) return;
  let wait = parseInt(button.dataset.wait || "0", 10);
  const tick = () => {
    if (wait <= 0) {
      button.disabled = false;
      button.textContent = button.dataset.label;
      return;
    }
    button.disabled = true;
    button.textContent = button.dataset.waiting.replace("{seconds}", String(wait));
    wait -= 1;
    setTimeout(tick, 1000);
  };
  tick();
}

// Sign-up: the agreement pops up and must be accepted before the code is sent.
function setUpAgreement() {
  const form = document.getElementById("signup-form");
  const dialog = document.getElementById("agreement-dialog");
  const checkbox = document.getElementById("agree");
  if (!form || !dialog || !checkbox || typeof dialog.showModal !== "function") return;
  form.addEventListener("submit", (event) => {
    if (checkbox.checked) return;
    event.preventDefault();
    dialog.showModal();
  });
  dialog.querySelector("[data-dialog=accept]").addEventListener("click", () => {
    checkbox.checked = true;
    dialog.close();
    form.requestSubmit();
  });
  dialog.querySelector("[data-dialog=decline]").addEventListener("click", () => dialog.close());
}

document.addEventListener("DOMContentLoaded", () => {
  setUpPicker();
  setUpResend();
  setUpAgreement();
});
