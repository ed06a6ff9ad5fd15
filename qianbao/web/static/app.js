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

// Login password: zxcvbn's estimate from the server, shown on a meter as one types.
function setUpStrengthMeter() {
  const input = document.querySelector("[data-strength]");
  if (!input) return;
  const meter = document.getElementById(input.dataset.strength);
  const label = document.getElementById("strength-label");
  let timer = null;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      if (!input.value) { meter.hidden = true; label.textContent = ""; return; }
      const response = await fetch("/api/v1/password-strength", {
        method: "POST",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify({password: input.value}),
      });
      if (!response.ok) return;
      const result = await response.json();
      meter.hidden = false;
      meter.value = result.score;
      label.textContent = result.label;
    }, 250);
  });
}

// Payment password: an on-screen keypad that types into the focused six-digit field.
function setUpKeypad() {
  const keypad = document.getElementById("keypad");
  const fields = Array.from(document.querySelectorAll("[data-keypad]"));
  if (!keypad || fields.length === 0) return;
  keypad.hidden = false;
  let target = fields.find((field) => !field.value) || fields[0];
  fields.forEach((field) => field.addEventListener("focus", () => { target = field; }));
  keypad.addEventListener("click", (event) => {
    const key = event.target.closest("[data-key]");
    if (!key) return;
    if (key.dataset.key === "⌫") {
      target.value = target.value.slice(0, -1);
    } else if (target.value.length < 6) {
      target.value += key.dataset.key;
      if (target.value.length === 6) {
        const next = fields[fields.indexOf(target) + 1];
        if (next) { target = next; next.focus(); }
      }
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  setUpPicker();
  setUpResend();
  setUpAgreement();
  setUpStrengthMeter();
  setUpKeypad();
});
