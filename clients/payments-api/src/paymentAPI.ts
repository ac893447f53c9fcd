/**
 * The payments API for the MERN frontend (`src/app/api/paymentAPI.ts`).
 *
 * Every request and answer type comes from `schema.d.ts`, generated from the API's own
 * `/openapi.json` (`npm run generate`); nothing here restates a shape. The caller hands in the base
 * URL of the payments API and a function giving the signed-in user's JWT (the MERN backend's), and
 * gets the API's errors as `PaymentApiError` (status, code, message, field).
 *
 *     const api = createPaymentAPI({ baseUrl: "https://payments.example.com", getToken: () => auth.token });
 *     const { clientSecret, paymentId } = await api.createPaymentIntent({ serviceId, serviceType: "course" });
 *     const { blob, filename } = await api.exportPaymentHistory({ format: "csv", status: "completed" });
 */
import type { components, operations, paths } from "./schema.js";

type Schemas = components["schemas"];
type Operation = keyof operations;
type Responses<Op extends Operation> = operations[Op]["responses"];
/** The JSON body an operation answers with `status`. */
type JsonAnswer<Op extends Operation, Status extends keyof Responses<Op>> = Responses<Op>[Status] extends {
  content: { "application/json": infer Body };
}
  ? Body
  : never;
/** The JSON body an operation takes. */
type JsonBody<Op extends Operation> = operations[Op] extends {
  requestBody?: { content: { "application/json": infer Body } };
}
  ? Body
  : never;
/** The query parameters an operation takes. */
type Query<Op extends Operation> = NonNullable<operations[Op]["parameters"]["query"]>;

export type Payment = Schemas["Payment"];
export type PaymentStatus = Schemas["StatusChange"]["status"];
export type Refund = Schemas["Refund"];
export type CreatePaymentIntentRequest = JsonBody<"createIntent">;
export type PaymentIntentCreated = JsonAnswer<"createIntent", 200>;
export type PaymentConfirmation = JsonAnswer<"confirmPayment", 200>;
export type PaymentHistoryQuery = Query<"customerHistory">;
export type PaymentHistoryPage = JsonAnswer<"customerHistory", 200>;
export type RefundRequest = JsonBody<"requestRefund">;
export type RefundRequested = JsonAnswer<"requestRefund", 202>;
/** The statistics' filters (`format` is the export's: `exportSpecialistStatistics`). */
export type StatisticsQuery = Omit<Query<"specialistStatistics">, "format">;
export type SpecialistStatistics = JsonAnswer<"specialistStatistics", 200>;
export type PaymentHistoryExportQuery = Query<"exportCustomerPayments">;
export type PaymentsExportQuery = Query<"exportPayments">;
/** A file the API answered: its content, the name it says to save it as (`Content-Disposition`), its type. */
export interface Download {
  blob: Blob;
  filename: string;
  contentType: string;
}
/** The body of every error answer: `{ error: { code, message, field? } }`. */
export type ErrorBody = Schemas["Error"];

/** The routes called, each checked against the schema's paths (a renamed route fails `tsc`). */
const ROUTES = {
  createIntent: "/api/payments/create-intent",
  confirmPayment: "/api/payments/confirm-payment",
  payment: "/api/payments/{paymentId}",
  history: "/api/payments/history/customer",
  refund: "/api/payments/{paymentId}/refund",
  statistics: "/api/payments/specialist/statistics",
  historyExport: "/api/payments/history/customer/export",
  adminExport: "/api/payments/export",
} as const satisfies Record<string, keyof paths>;

/**
 * An answer other than 2xx, as the API's error body says it; or the API not reached at all
 * (`status` 0, `code` `network_error`: offline, or refused by the browser, CORS included).
 */
export class PaymentApiError extends Error {
  override readonly name = "PaymentApiError";

  constructor(
    /** The HTTP status; 0 when no answer could be read. */
    readonly status: number,
    /** The API's error code (`validation_error`, `not_found`, `rate_limited`, …). */
    readonly code: string,
    message: string,
    /** The request field at fault, for validation errors. */
    readonly field?: string,
    /** The answer's `X-Request-Id`: the API's logs have the request under it. */
    readonly requestId?: string,
    /** Seconds to wait before trying again (429's `Retry-After`). */
    readonly retryAfter?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface PaymentApiOptions {
  /** The payments API's origin, with no trailing slash: `http://localhost:5001`. */
  baseUrl: string;
  /** The signed-in user's JWT (the MERN backend's), or nothing when signed out. */
  getToken: () => string | null | undefined | Promise<string | null | undefined>;
  /** A `fetch` to use instead of the global one (tests, server-side rendering). */
  fetch?: typeof fetch;
}

export interface PaymentAPI {
  /** Price the service and create (or reuse) the customer's PaymentIntent; pay with its `clientSecret`. */
  createPaymentIntent(body: CreatePaymentIntentRequest): Promise<PaymentIntentCreated>;
  /** Ask the API to check the intent with Stripe now (the fallback when its webhook is slow). */
  confirmPayment(paymentIntentId: string): Promise<PaymentConfirmation>;
  /** One payment, as the caller may see it. */
  getPaymentDetails(paymentId: string): Promise<Payment>;
  /** The caller's payments, newest first; pass `nextCursor` back as `cursor` for the next page. */
  getPaymentHistory(query?: PaymentHistoryQuery): Promise<PaymentHistoryPage>;
  /** Ask for a refund: all that is left without `amount`. Stripe's refund follows (202). */
  processRefund(paymentId: string, body?: RefundRequest): Promise<RefundRequested>;
  /** A specialist's earnings (admins name `specialistId`). */
  getSpecialistStatistics(query?: StatisticsQuery): Promise<SpecialistStatistics>;
  /** All the caller's payments as a file (CSV unless `format: "json"`), filtered like the history. */
  exportPaymentHistory(query?: PaymentHistoryExportQuery): Promise<Download>;
  /** Admins: every payment created in the period, as a file. */
  exportPayments(query?: PaymentsExportQuery): Promise<Download>;
  /** A specialist's earnings by month as a CSV file. */
  exportSpecialistStatistics(query?: StatisticsQuery): Promise<Download>;
}

type QueryValues = Record<string, string | number | boolean | null | undefined>;

interface Call {
  method: "GET" | "POST";
  path: string;
  query?: QueryValues | undefined;
  body?: unknown;
  accept?: string;
}

function pathOf(route: string, paymentId: string): string {
  return route.replace("{paymentId}", encodeURIComponent(paymentId));
}

function queryString(query: QueryValues | undefined): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== "") {
      params.set(name, String(value));
    }
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

/** The file name of `attachment; filename="payments-20261107.csv"`, else `fallback`. */
export function filenameOf(disposition: string | null, fallback: string): string {
  const found = /filename="([^"]+)"/.exec(disposition ?? "");
  return found?.[1] ?? fallback;
}

function isErrorBody(body: unknown): body is ErrorBody {
  if (typeof body !== "object" || body === null || !("error" in body)) {
    return false;
  }
  const error = (body as { error: unknown }).error;
  return (
    typeof error === "object" &&
    error !== null &&
    typeof (error as { code?: unknown }).code === "string" &&
    typeof (error as { message?: unknown }).message === "string"
  );
}

/** The error an answer other than 2xx stands for. */
export async function errorOf(response: Response): Promise<PaymentApiError> {
  const requestId = response.headers.get("X-Request-Id") ?? undefined;
  const wait = Number(response.headers.get("Retry-After") ?? Number.NaN);
  const retryAfter = Number.isFinite(wait) ? wait : undefined;
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    body = undefined;
  }
  if (isErrorBody(body)) {
    const { code, message, field } = body.error;
    return new PaymentApiError(response.status, code, message, field, requestId, retryAfter);
  }
  const text = response.statusText || "no error body";
  return new PaymentApiError(response.status, "http_error", `HTTP ${response.status}: ${text}`, undefined, requestId);
}

export function createPaymentAPI(options: PaymentApiOptions): PaymentAPI {
  const base = options.baseUrl.replace(/\/+$/, "");
  const send = options.fetch ?? globalThis.fetch.bind(globalThis);

  async function request(call: Call): Promise<Response> {
    const headers: Record<string, string> = { Accept: call.accept ?? "application/json" };
    const token = await options.getToken();
    if (token) {
      headers["Authorization"] = `Bearer ${token}`;
    }
    const init: RequestInit = { method: call.method, headers };
    if (call.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(call.body);
    }
    let response: Response;
    try {
      response = await send(`${base}${call.path}${queryString(call.query)}`, init);
    } catch (cause) {
      throw new PaymentApiError(
        0,
        "network_error",
        "The payments API could not be reached (offline, or the browser refused the call: CORS).",
        undefined,
        undefined,
        undefined,
        { cause },
      );
    }
    if (!response.ok) {
      throw await errorOf(response);
    }
    return response;
  }

  async function json<T>(call: Call): Promise<T> {
    return (await (await request(call)).json()) as T;
  }

  async function download(call: Call, fallback: string): Promise<Download> {
    const response = await request({ ...call, accept: "text/csv, application/json" });
    const filename = filenameOf(response.headers.get("Content-Disposition"), fallback);
    const contentType = response.headers.get("Content-Type") ?? "application/octet-stream";
    return { blob: await response.blob(), filename, contentType };
  }

  return {
    createPaymentIntent: (body) => json({ method: "POST", path: ROUTES.createIntent, body }),
    confirmPayment: (paymentIntentId) =>
      json({
        method: "POST",
        path: ROUTES.confirmPayment,
        body: { paymentIntentId } satisfies JsonBody<"confirmPayment">,
      }),
    getPaymentDetails: (paymentId) => json({ method: "GET", path: pathOf(ROUTES.payment, paymentId) }),
    getPaymentHistory: (query) => json({ method: "GET", path: ROUTES.history, query }),
    processRefund: (paymentId, body = {}) =>
      json({ method: "POST", path: pathOf(ROUTES.refund, paymentId), body }),
    getSpecialistStatistics: (query) => json({ method: "GET", path: ROUTES.statistics, query }),
    exportPaymentHistory: (query) =>
      download({ method: "GET", path: ROUTES.historyExport, query }, `payments.${query?.format ?? "csv"}`),
    exportPayments: (query) =>
      download({ method: "GET", path: ROUTES.adminExport, query }, `payments.${query?.format ?? "csv"}`),
    exportSpecialistStatistics: (query) =>
      download(
        {
          method: "GET",
          path: ROUTES.statistics,
          query: { ...query, format: "csv" } satisfies Query<"specialistStatistics">,
        },
        "statistics.csv",
      ),
  };
}
