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

// Verification: a long request (reading a passport, checking a face) says so while it runs.
function setUpBusyForms() {
  document.querySelectorAll("form[data-busy]").forEach((form) => {
    form.addEventListener("submit", () => {
      const busy = form.querySelector(".busy");
      if (busy) { busy.textContent = form.dataset.busy; busy.hidden = false; }
      form.querySelectorAll("button").forEach((button) => { button.disabled = true; });
    });
  });
}

// Put captured images into the form's file input, as if they had been chosen.
function fillFileInput(input, blobs, prefix) {
  const files = new DataTransfer();
  blobs.forEach((blob, index) => {
    files.items.add(new File([blob], `${prefix}-${String(index).padStart(2, "0")}.jpg`, {type: "image/jpeg"}));
  });
  input.files = files.files;
}

async function openCamera(video, facing) {
  const stream = await navigator.mediaDevices.getUserMedia({
    video: {facingMode: facing, width: {ideal: facing === "user" ? 640 : 1920}},
    audio: false,
  });
  video.srcObject = stream;
  await video.play();
  return stream;
}

function grab(video, maxWidth) {
  const scale = Math.min(1, maxWidth / video.videoWidth);
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
}

// Step 1: the rear camera photographs the passport page; upload stays as the fallback.
function setUpPageCamera() {
  const box = document.getElementById("page-camera");
  if (!box || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return;
  const video = document.getElementById("page-video");
  const form = document.getElementById("page-form");
  const input = document.getElementById("page-file");
  openCamera(video, box.dataset.facing).then(() => {
    box.hidden = false;
    document.getElementById("page-shoot").addEventListener("click", async () => {
      fillFileInput(input, [await grab(video, 1920)], "page");
      form.requestSubmit();
    });
  }).catch(() => { /* no camera, or refused: the upload remains */ });
}

// Step 2: the front camera records frames while the prompts walk through the challenge:
// look at the camera, first action, look back, second action, look back.
function setUpFaceCamera() {
  const box = document.getElementById("face-camera");
  if (!box || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return;
  const form = document.getElementById("face-form");
  const video = document.getElementById("face-video");
  const prompt = document.getElementById("face-prompt");
  const input = document.getElementById("face-files");
  const prompts = form.dataset.prompts.split("|");
  const look = form.dataset.look;
  const script = [[look, 1200], [prompts[0], 2000], [look, 1200], [prompts[1], 2000], [look, 1000]];
  openCamera(video, box.dataset.facing).then(() => {
    box.hidden = false;
    document.getElementById("face-record").addEventListener("click", async (event) => {
      event.target.disabled = true;
      const frames = [];
      for (const [words, duration] of script) {
        prompt.textContent = words;
        const until = performance.now() + duration;
        while (performance.now() < until) {
          frames.push(await grab(video, 640));
          await new Promise((resolve) => setTimeout(resolve, 220));
        }
      }
      prompt.textContent = "";
      fillFileInput(input, frames.slice(0, 40), "frame");
      form.requestSubmit();
    });
  }).catch(() => { /* no camera, or refused: the upload remains */ });
}

// Time zone: offer the browser's own zone too, if the list lacks it (the server
// detected one from the mobile number, which may not be where the person is now).
function setUpZoneDetection() {
  const select = document.querySelector("select[data-detect-zone]");
  if (!select || !window.Intl) return;
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (!zone || Array.from(select.options).some((option) => option.value === zone)) return;
  select.add(new Option(zone, zone), 1);
}

document.addEventListener("DOMContentLoaded", () => {
  setUpZoneDetection();
  setUpBusyForms();
  setUpPageCamera();
  setUpFaceCamera();
  setUpPicker();
  setUpResend();
  setUpAgreement();
  setUpStrengthMeter();
  setUpKeypad();
});
