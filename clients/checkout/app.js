// The checkout page: what the MERN frontend's payment screens do, with clients/payments-api.
// Its configuration (/config.json, written by the local stack) names the payments API, Stripe.js
// and the demo users' JWTs; a real app gets the JWT from its own sign-in.
import { createPaymentAPI, PaymentApiError } from "/payments-api/paymentAPI.js";

const $ = (selector) => document.querySelector(selector);
const config = await (await fetch("/config.json")).json();
let session = null;
const api = createPaymentAPI({ baseUrl: config.apiBaseUrl, getToken: () => session && session.token });

// -- Stripe.js and its card element ----------------------------------------------------------------

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`Stripe.js could not be loaded from ${src}`));
    document.head.append(script);
  });
}

await loadScript(config.stripe.jsUrl);
const stripe = window.Stripe(config.stripe.publishableKey);
const card = stripe.elements().create("card");
card.mount("#card-element");

// -- messages --------------------------------------------------------------------------------------

function describe(error) {
  if (error instanceof PaymentApiError) {
    if (error.status === 0) {
      return `${error.message}`;
    }
    const field = error.field ? `, field ${error.field}` : "";
    const request = error.requestId ? `; request ${error.requestId}` : "";
    return `${error.message} (${error.status} ${error.code}${field}${request})`;
  }
  return String((error && error.message) || error);
}

function showError(error) {
  const box = $("#error");
  box.textContent = describe(error);
  box.dataset.code = error instanceof PaymentApiError ? error.code : "client_error";
  box.hidden = false;
}

function clearError() {
  $("#error").hidden = true;
  $("#error").textContent = "";
}

function setStatus(state, text) {
  const line = $("#payment-status");
  line.dataset.state = state;
  line.textContent = text;
}

function money(amount, currency) {
  const format = new Intl.NumberFormat(undefined, { style: "currency", currency });
  const digits = format.resolvedOptions().maximumFractionDigits;
  return format.format(amount / 10 ** digits);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// -- signing in ------------------------------------------------------------------------------------

function signIn(user) {
  session = user;
  sessionStorage.setItem("checkout-user", user.role);
  clearError();
  for (const button of document.querySelectorAll("#users button")) {
    button.setAttribute("aria-pressed", String(button.dataset.role === user.role));
  }
  $("#signed-in").textContent = `Signed in as ${user.name} (${user.role}).`;
  const customer = user.role === "customer";
  $("#checkout").hidden = !customer;
  $("#history").hidden = !customer;
  $("#statistics").hidden = user.role !== "specialist";
  if (customer) {
    loadHistory();
  } else if (user.role === "specialist") {
    loadStatistics();
  }
}

for (const user of config.users) {
  const button = document.createElement("button");
  button.type = "button";
  button.dataset.role = user.role;
  button.textContent = `Sign in as ${user.name} (${user.role})`;
  button.addEventListener("click", () => signIn(user));
  $("#users").append(button);
}

for (const [index, service] of config.services.entries()) {
  const label = document.createElement("label");
  const radio = Object.assign(document.createElement("input"), { type: "radio", name: "service", value: service.id });
  radio.checked = index === 0;
  label.append(radio, ` ${service.name} · ${service.type} · ${money(service.amount, service.currency)}`);
  $("#services").append(label);
}

// -- paying ----------------------------------------------------------------------------------------

/** Poll the payment until its enrollment is active; then ask confirm-payment, as the seed app does. */
async function waitForEnrollment(paymentId) {
  const deadline = Date.now() + 6000;
  while (Date.now() < deadline) {
    const payment = await api.getPaymentDetails(paymentId);
    if (payment.enrollmentId) {
      return payment.enrollmentId;
    }
    await sleep(400);
  }
  const confirmation = await api.confirmPayment(paymentId);
  return confirmation.enrollmentId;
}

$("#pay-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearError();
  const service = config.services.find((s) => s.id === document.querySelector("input[name=service]:checked")?.value);
  $("#pay").disabled = true;
  try {
    setStatus("creating", "Creating the payment…");
    const intent = await api.createPaymentIntent({ serviceId: service.id, serviceType: service.type });
    $("#payment-status").dataset.payment = intent.paymentId;
    setStatus("confirming", `Paying ${money(intent.amount, intent.currency)}…`);
    const result = await stripe.confirmCardPayment(intent.clientSecret, { payment_method: { card } });
    if (result.error) {
      setStatus("declined", `Payment declined: ${result.error.message}`);
      return;
    }
    setStatus("processing", "Processing: waiting for the payment to be confirmed…");
    const enrollment = await waitForEnrollment(intent.paymentId);
    if (enrollment) {
      setStatus("enrolled", `Enrolled in ${service.name}.`);
      $("#payment-status").dataset.enrollment = enrollment;
    } else {
      setStatus("processing", "Still processing: the enrollment will follow the payment's confirmation.");
    }
    loadHistory();
  } catch (error) {
    setStatus("error", "The payment could not be made.");
    showError(error);
  } finally {
    $("#pay").disabled = false;
  }
});

// -- history, refunds, export ----------------------------------------------------------------------

const REFUNDABLE = new Set(["completed", "partially_refunded"]);

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) {
    td.className = className;
  }
  return td;
}

let historyAsked = 0;

async function loadHistory() {
  const asked = ++historyAsked;
  try {
    const status = $("#status-filter").value || undefined;
    const page = await api.getPaymentHistory({ status, limit: 50 });
    if (asked !== historyAsked) {
      return; // a newer load (another filter) is on its way: its rows win
    }
    const rows = page.items.map((payment) => {
      const row = document.createElement("tr");
      row.dataset.payment = payment.paymentId ?? "";
      row.dataset.status = payment.status ?? "";
      const when = payment.createdAt ? new Date(payment.createdAt).toLocaleString() : "";
      row.append(
        cell(when),
        cell(payment.serviceName ?? payment.serviceId ?? ""),
        cell(money(payment.amount ?? 0, payment.currency ?? "USD"), "money"),
        cell(payment.status ?? "", "status"),
        cell(payment.amountRefunded ? money(payment.amountRefunded, payment.currency ?? "USD") : "", "money"),
      );
      const actions = document.createElement("td");
      if (REFUNDABLE.has(payment.status) && payment.paymentId) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "refund";
        button.textContent = "Request refund";
        button.addEventListener("click", () => requestRefund(payment.paymentId, button));
        actions.append(button);
      }
      row.append(actions);
      return row;
    });
    $("#history-rows").replaceChildren(...rows);
  } catch (error) {
    showError(error);
  }
}

async function requestRefund(paymentId, button) {
  clearError();
  button.disabled = true;
  try {
    const answer = await api.processRefund(paymentId, { reason: "requested_by_customer" });
    $("#refund-status").textContent = `Refund requested (${answer.status}).`;
    const deadline = Date.now() + 10000;
    while (Date.now() < deadline) {
      const payment = await api.getPaymentDetails(paymentId);
      if (!REFUNDABLE.has(payment.status) || payment.amountRefunded) {
        $("#refund-status").textContent = `Refunded: the payment is ${payment.status}.`;
        break;
      }
      await sleep(400);
    }
    await loadHistory();
  } catch (error) {
    button.disabled = false;
    showError(error);
  }
}

function save(download) {
  const url = URL.createObjectURL(download.blob);
  const link = Object.assign(document.createElement("a"), { href: url, download: download.filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

$("#status-filter").addEventListener("change", () => loadHistory());

$("#export-csv").addEventListener("click", async () => {
  clearError();
  try {
    save(await api.exportPaymentHistory({ format: "csv", status: $("#status-filter").value || undefined }));
  } catch (error) {
    showError(error);
  }
});

// -- a specialist's statistics ---------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

function svg(name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) {
    element.setAttribute(key, String(value));
  }
  if (text !== undefined) {
    element.textContent = text;
  }
  return element;
}

/** Bars of net revenue by month, one chart per currency (amounts are never summed across currencies). */
function drawChart(byMonth) {
  const charts = [];
  for (const currency of [...new Set(byMonth.map((row) => row.currency))].sort()) {
    const rows = byMonth.filter((row) => row.currency === currency);
    const [width, height, bar, gap, top, bottom] = [Math.max(240, rows.length * 90), 190, 56, 34, 24, 28];
    const peak = Math.max(1, ...rows.map((row) => row.net));
    const chart = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "data-currency": currency });
    chart.append(svg("title", {}, `Net revenue by month, ${currency}`));
    rows.forEach((row, index) => {
      const x = gap / 2 + index * (bar + gap);
      const size = Math.max(0, (row.net / peak) * (height - top - bottom));
      const y = height - bottom - size;
      chart.append(
        svg("rect", { x, y, width: bar, height: size, "data-month": row.month, "data-net": row.net }),
        svg("text", { x: x + bar / 2, y: y - 6, "text-anchor": "middle" }, money(row.net, currency)),
        svg("text", { x: x + bar / 2, y: height - 10, "text-anchor": "middle" }, row.month),
      );
    });
    charts.push(chart);
  }
  $("#revenue-chart").replaceChildren(...charts);
}

async function loadStatistics() {
  try {
    const figures = await api.getSpecialistStatistics();
    $("#totals").replaceChildren(
      ...figures.totals.map((row) => {
        const tr = document.createElement("tr");
        tr.append(
          cell(row.currency),
          cell(String(row.count)),
          cell(money(row.gross, row.currency), "money"),
          cell(money(row.refunded, row.currency), "money"),
          cell(money(row.net, row.currency), "money"),
        );
        return tr;
      }),
    );
    drawChart(figures.byMonth);
  } catch (error) {
    showError(error);
  }
}

$("#statistics-csv").addEventListener("click", async () => {
  clearError();
  try {
    save(await api.exportSpecialistStatistics({ format: "csv" }));
  } catch (error) {
    showError(error);
  }
});

// -- start -----------------------------------------------------------------------------------------

const remembered = config.users.find((user) => user.role === sessionStorage.getItem("checkout-user"));
if (remembered) {
  signIn(remembered);
}
document.body.dataset.ready = "true";
