// Calls to the service's public API: JSON in and out, the API key (asked for on a 401, kept in
// sessionStorage), errors as the API's own message, server-sent events read from a fetch stream.

const KEY = "nlp-service-api-key";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function headers(json) {
  const h = {};
  if (json) h["Content-Type"] = "application/json";
  const key = sessionStorage.getItem(KEY);
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

// The message of an error answer: `error.message` of the JSON body (TGI's paths: `error` itself).
async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    const error = body && body.error;
    if (error && typeof error.message === "string") message = error.message;
    else if (typeof error === "string") message = error;
  } catch {
    // not JSON: keep the status line
  }
  if (response.status === 401) askForKey();
  return new ApiError(response.status, message);
}

async function send(path, body, signal) {
  const init = { method: body === undefined ? "GET" : "POST", headers: headers(body !== undefined), signal };
  if (body !== undefined) init.body = JSON.stringify(body);
  let response;
  try {
    response = await fetch(path, init);
  } catch (exc) {
    if (exc.name === "AbortError") throw exc;
    throw new ApiError(0, `the service cannot be reached (${exc.message})`);
  }
  if (!response.ok) throw await failure(response);
  return response;
}

/** GET (no body) or POST a JSON body; the JSON answer. */
export async function api(path, body, { signal } = {}) {
  return (await send(path, body, signal)).json();
}

/** GET a binary resource (an image) as a Blob, with the key. */
export async function blob(path) {
  return (await send(path)).blob();
}

/** POST a JSON body and yield each server-sent event's data, parsed, as it arrives. */
export async function* events(path, body, signal) {
  const response = await send(path, body, signal);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replaceAll("\r\n", "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart());
      if (data.length) yield JSON.parse(data.join("\n"));
    }
  }
}

// ---- the API key --------------------------------------------------------------------------------------

const listeners = [];

/** Call `fn` when a new key is given (to retry what failed). */
export function onKey(fn) {
  listeners.push(fn);
}

function askForKey() {
  const bar = document.getElementById("keybar");
  if (!bar.hidden) return;
  bar.hidden = false;
  document.getElementById("api-key").focus();
}

export function setUpKeyForm() {
  const bar = document.getElementById("keybar");
  bar.addEventListener("submit", (event) => {
    event.preventDefault();
    const input = document.getElementById("api-key");
    sessionStorage.setItem(KEY, input.value.trim());
    input.value = "";
    bar.hidden = true;
    for (const fn of listeners) fn();
  });
}
