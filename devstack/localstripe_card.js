// Appended to localstripe's Stripe.js by devstack/localstripe_server.py.
//
// localstripe's confirmCardPayment leaves the card element out: it only opens its 3-D Secure
// dialog for an intent its server already confirmed. This one does what Stripe.js does: it sends
// the card element's card with the publishable key and the client secret to
// POST /v1/payment_intents/{id}/confirm, opens localstripe's 3-D Secure dialog when the intent
// then requires action ("Complete authentication" or "Fail authentication"), and answers
// {paymentIntent} or {error} as Stripe.js does (a decline: {error: {type: "card_error", code,
// decline_code, message, payment_intent}}).
(function () {
  const localStripe = Stripe;
  const base = LOCALSTRIPE_BASE_API;

  async function post(url, body) {
    // No Content-Type header: a simple request, as localstripe's own calls (no CORS preflight).
    const response = await fetch(url, { method: "POST", body: JSON.stringify(body) });
    const json = await response.json().catch(() => ({}));
    return { ok: response.status === 200 && !json.error, json };
  }

  function failed(json) {
    return { error: json.error || { type: "api_error", message: "The payment could not be confirmed." } };
  }

  function cardOf(element) {
    const value = element && element.value;
    if (!value || !value.card || !value.card.number) {
      return { error: { type: "validation_error", code: "incomplete_number", message: "Your card number is incomplete." } };
    }
    const number = String(value.card.number).replace(/\s+/g, "");
    if (!/^[0-9]{16}$/.test(number)) {
      return { error: { type: "validation_error", code: "invalid_number", message: "Your card number is invalid." } };
    }
    if (!/^[0-9]{1,2}$/.test(value.card.exp_month) || !/^20[0-9]{2}$/.test(value.card.exp_year)) {
      return { error: { type: "validation_error", code: "incomplete_expiry", message: "Your card's expiration date is incomplete." } };
    }
    if (!/^[0-9]{3}$/.test(value.card.cvc)) {
      return { error: { type: "validation_error", code: "incomplete_cvc", message: "Your card's security code is incomplete." } };
    }
    return {
      card: { number, exp_month: value.card.exp_month, exp_year: value.card.exp_year, cvc: value.card.cvc },
      billing_details: { address: { postal_code: value.postal_code || null } },
    };
  }

  Stripe = function (apiKey) {
    const stripe = localStripe(apiKey);
    stripe.confirmCardPayment = async function (clientSecret, data) {
      console.log("localstripe (payments-pipeline): Stripe().confirmCardPayment() with the card element");
      const match = /^(pi_\w+)_secret_/.exec(clientSecret || "");
      if (!match) {
        return { error: { type: "invalid_request_error", message: "Invalid value for confirmCardPayment: clientSecret." } };
      }
      const card = cardOf(data && data.payment_method && data.payment_method.card);
      if (card.error) {
        return card;
      }
      const intent = `${base}/v1/payment_intents/${match[1]}`;
      const auth = { key: apiKey, client_secret: clientSecret };
      try {
        let answer = await post(`${intent}/confirm`, {
          ...auth,
          payment_method_data: { type: "card", card: card.card, billing_details: card.billing_details },
        });
        if (!answer.ok) {
          return failed(answer.json);
        }
        if (answer.json.status === "requires_action") {
          const success = await openModal(
            "3D Secure\nDo you want to confirm or cancel?",
            "Complete authentication",
            "Fail authentication",
          );
          answer = await post(`${intent}/_authenticate?success=${success}`, auth);
          if (!answer.ok) {
            return failed(answer.json);
          }
          if (answer.json.status !== "succeeded" && answer.json.last_payment_error) {
            return { error: { type: "card_error", ...answer.json.last_payment_error, payment_intent: answer.json } };
          }
        }
        return { paymentIntent: answer.json };
      } catch (err) {
        return { error: { type: "api_connection_error", message: String((err && err.message) || err) } };
      }
    };
    return stripe;
  };
})();
