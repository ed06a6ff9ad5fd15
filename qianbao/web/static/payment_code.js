// The payment code page: a new code before the shown one runs out (the server draws it;
// a code works once, so the page is simply drawn again).
document.addEventListener("DOMContentLoaded", () => {
  const card = document.querySelector("[data-renew-after]");
  if (!card) return;
  const seconds = Number(card.dataset.renewAfter);
  if (seconds > 0) setTimeout(() => window.location.replace("/wallet/payment-code"), seconds * 1000);
});
