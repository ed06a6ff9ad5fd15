// Scan: the camera's frames are read in the page, by the browser's BarcodeDetector where
// there is one, by jsQR (served from /static/vendor/jsqr) otherwise. What a code says is
// sent to the server by the same form as a pasted code: the server decides where it leads.
document.addEventListener("DOMContentLoaded", () => {
  const video = document.querySelector("[data-scan-video]");
  const canvas = document.querySelector("[data-scan-canvas]");
  const status = document.querySelector("[data-scan-status]");
  const start = document.querySelector("[data-scan-start]");
  const form = document.querySelector("[data-scan-form]");
  if (!video || !canvas || !status || !start || !form) return;
  const say = (key) => { status.textContent = status.dataset[key]; };

  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    say("noCamera");
    return;
  }

  const makeReader = async () => {
    if ("BarcodeDetector" in window) {
      try {
        const formats = await window.BarcodeDetector.getSupportedFormats();
        if (formats.includes("qr_code")) {
          const detector = new window.BarcodeDetector({ formats: ["qr_code"] });
          return async (source) => {
            const found = await detector.detect(source);
            return found.length ? found[0].rawValue : null;
          };
        }
      } catch (error) { /* fall back to jsQR */ }
    }
    if (typeof window.jsQR !== "function") return null;
    const context = canvas.getContext("2d", { willReadFrequently: true });
    return async (source) => {
      canvas.width = source.videoWidth;
      canvas.height = source.videoHeight;
      if (!canvas.width || !canvas.height) return null;
      context.drawImage(source, 0, 0, canvas.width, canvas.height);
      const image = context.getImageData(0, 0, canvas.width, canvas.height);
      const found = window.jsQR(image.data, image.width, image.height, { inversionAttempts: "dontInvert" });
      return found ? found.data : null;
    };
  };

  const submit = (text) => {
    say("found");
    form.querySelector("[name=text]").value = text;
    video.srcObject.getTracks().forEach((track) => track.stop());
    form.submit();
  };

  const run = async () => {
    start.hidden = true;
    say("starting");
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
    } catch (error) {
      say("noCamera");
      return;
    }
    const read = await makeReader();
    if (!read) { say("noCamera"); return; }
    video.srcObject = stream;
    video.hidden = false;
    await video.play();
    say("looking");
    const tick = async () => {
      let text = null;
      try { text = await read(video); } catch (error) { text = null; }
      if (text) { submit(text); return; }
      window.requestAnimationFrame(tick);
    };
    window.requestAnimationFrame(tick);
  };

  // The camera opens on a tap, not by itself: the browser asks for permission then.
  start.hidden = false;
  start.addEventListener("click", run);
});
