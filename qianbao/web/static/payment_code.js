// The payment code page: a new code before the shown one runs out (the server draws it;
// a code works once, so the page is simply drawn again). A hidden tab asks for none: it
// draws a new one when it is looked at again.
document.addEventListener("DOMContentLoaded", () => {
  const card = document.querySelector("[data-renew-after]");
  if (!card) return;
  const seconds = Number(card.dataset.renewAfter);
  if (!(seconds > 0)) return;
  const renew = () => window.location.replace("/wallet/payment-code");
  let due = false;
  setTimeout(() => {
    due = true;
    if (document.visibilityState === "visible") renew();
  }, seconds * 1000);
  document.addEventListener("visibilitychange", () => {
    if (due && document.visibilityState === "visible") renew();
  });
});
