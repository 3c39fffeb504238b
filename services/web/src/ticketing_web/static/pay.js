// Card payments with Stripe.js: the card number goes from the browser to Stripe, which
// returns a token; only the token is posted to this site. Loaded only when a
// publishable key is configured.
(function () {
  "use strict";
  var form = document.getElementById("pay-form");
  if (!form || typeof window.Stripe !== "function") { return; }
  var stripe = window.Stripe(form.getAttribute("data-stripe-key"));
  var card = stripe.elements().create("card");
  card.mount("#card-element");
  var errors = document.getElementById("card-errors");
  var submitting = false;

  form.addEventListener("submit", function (event) {
    if (form.elements.token.value) { return; }
    event.preventDefault();
    if (submitting) { return; }
    submitting = true;
    stripe.createToken(card).then(function (result) {
      submitting = false;
      if (result.error) {
        errors.textContent = result.error.message;
        return;
      }
      form.elements.token.value = result.token.id;
      form.submit();
    });
  });
})();
