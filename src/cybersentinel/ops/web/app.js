// The CyberSentinel page: sends the pasted or uploaded values to POST /v1/score in batches and shows each
// verdict. Everything is rendered with textContent, so a submitted string can never become markup.
"use strict";

const KEY_STORAGE = "cybersentinel-api-key";
const ANALYST_STORAGE = "cybersentinel-analyst";
let batchSize = 1000;  // lowered to the server's limit when /v1/model says so

const $ = (id) => document.getElementById(id);

function apiHeaders(extra) {
  const headers = Object.assign({}, extra);
  const key = sessionStorage.getItem(KEY_STORAGE);
  if (key) headers["X-API-Key"] = key;
  return headers;
}

// The key typed into the page, kept for this tab: every request sends the latest one (a feedback button pressed
// again after a key was asked for sends the key just entered), and an emptied field forgets it.
function rememberKey() {
  const key = $("api-key").value.trim();
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

function askForKey(message) {
  $("key-row").hidden = false;
  $("api-key").focus();
  setStatus(message, true);
}

function setStatus(text, isError) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", Boolean(isError));
}

// One CSV line split into fields, honouring double quotes ("a,b" stays one field, "" is a quote).
function csvFields(line) {
  const fields = [];
  let field = "", quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { fields.push(field); field = ""; }
    else field += c;
  }
  fields.push(field);
  return fields;
}

// The values in a file: the `url` column of a CSV with a header, else one value per non-empty line.
function valuesFromFile(text) {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== "");
  if (lines.length === 0) return [];
  const header = csvFields(lines[0]).map((h) => h.trim().toLowerCase());
  const column = header.indexOf("url");
  if (column >= 0 && (header.length > 1 || lines[0].trim().toLowerCase() === "url")) {
    return lines.slice(1).map((l) => (csvFields(l)[column] || "").trim());
  }
  return lines.map((l) => l.trim());
}

function valuesFromTextarea() {
  return $("urls").value.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== "");
}

async function scoreBatch(values) {
  const response = await fetch("/v1/score", {
    method: "POST",
    headers: apiHeaders({"Content-Type": "application/json"}),
    body: JSON.stringify({urls: values}),
  });
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (response.status === 401) {
    const error = new Error("This server needs an API key: enter it and press Check again.");
    error.needsKey = true;
    throw error;
  }
  if (!response.ok) {
    const detail = body && body.detail;
    const text = typeof detail === "string" ? detail : JSON.stringify(detail);
    throw new Error(`The server refused the request (HTTP ${response.status}): ${text}`);
  }
  return body.results;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  if (text !== undefined && text !== null) td.textContent = text;
  row.appendChild(td);
  return td;
}

function reasonsList(reasons) {
  if (reasons === undefined || reasons === null || reasons === "") return [];
  if (Array.isArray(reasons)) return reasons.map(String);
  return String(reasons).split(/;\s*/).filter((r) => r !== "");
}

// Matched feeds come as one ", "-joined string (empty when none lists the host). Whether the server has feeds at
// all is in its model card (`feeds` null without them): an empty string there means nothing was checked.
let feedsLoaded = null;  // unknown until the card is read

function intelText(result) {
  if (result.error || feedsLoaded === null) return "";
  if (!feedsLoaded) return "feeds not loaded";
  return result.feeds ? `listed in ${result.feeds}` : "no feed match";
}

function renderRow(tbody, index, result) {
  const verdict = result.error ? "error" : result.verdict;
  const tr = document.createElement("tr");
  tr.className = verdict;
  tr.dataset.verdict = verdict;
  cell(tr, String(index + 1));
  cell(tr, result.url, "input");

  const badge = document.createElement("span");
  badge.className = `badge ${verdict}`;
  badge.textContent = verdict;
  cell(tr, null, "verdict").appendChild(badge);

  const scoreCell = cell(tr, null, "score");
  if (result.error) {
    scoreCell.textContent = "–";
  } else {
    const bar = document.createElement("span");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.className = verdict;
    fill.style.width = `${Math.round(result.score * 100)}%`;
    bar.appendChild(fill);
    scoreCell.appendChild(bar);
    scoreCell.appendChild(document.createTextNode(result.score.toFixed(3)));
  }

  const reasonsCell = cell(tr, null, "reasons");
  const reasons = result.error ? [result.error] : reasonsList(result.reasons);
  if (reasons.length) {
    const ul = document.createElement("ul");
    ul.className = "reasons";
    for (const reason of reasons) {
      const li = document.createElement("li");
      li.textContent = reason;
      ul.appendChild(li);
    }
    reasonsCell.appendChild(ul);
  }
  cell(tr, intelText(result), "intel");
  feedbackCell(tr, result);
  tbody.appendChild(tr);
}

// Per result: this URL or its whole host, an optional note, and the two corrections an analyst can make.
function feedbackCell(tr, result) {
  const td = cell(tr, null, "feedback");
  if (result.error) return;
  const scope = document.createElement("select");
  scope.className = "scope";
  for (const [value, text] of [["url", "this URL"], ["host", "whole host"]]) {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = text;
    scope.appendChild(option);
  }
  const note = document.createElement("input");
  note.type = "text";
  note.className = "note";
  note.maxLength = 2000;
  note.placeholder = "note (optional)";
  const status = document.createElement("span");
  status.className = "feedback-status";
  const buttons = [["false_positive", "False positive"], ["confirmed_malicious", "Confirm malicious"]].map(
    ([kind, label]) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = `secondary ${kind}`;
      button.textContent = label;
      button.addEventListener("click", () => sendFeedback(tr, result.url, kind, scope.value, note.value, status));
      return button;
    });
  td.append(scope, note, ...buttons, status);
}

async function sendFeedback(tr, url, kind, scope, note, status) {
  const analyst = $("analyst").value.trim();
  if (!analyst) {
    status.textContent = "Enter your name first (feedback is attributed).";
    status.classList.add("error");
    $("analyst").focus();
    return;
  }
  status.classList.remove("error");
  status.textContent = "Sending…";
  rememberKey();
  let response;
  try {
    response = await fetch("/v1/feedback", {
      method: "POST",
      headers: apiHeaders({"Content-Type": "application/json"}),
      body: JSON.stringify({url, kind, scope, note: note.trim(), analyst}),
    });
  } catch (error) {
    status.textContent = `Not sent: ${error.message}`;
    status.classList.add("error");
    return;
  }
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (response.status === 401) {
    askForKey("This server needs an API key: enter it and send the feedback again.");
    status.textContent = "API key needed.";
    status.classList.add("error");
    return;
  }
  if (response.status === 403) {  // a scoring key, where the server takes only feedback keys for corrections
    askForKey("This key can check URLs but not record feedback: enter a feedback key and send the feedback again.");
    status.textContent = "Feedback key needed.";
    status.classList.add("error");
    return;
  }
  if (!response.ok) {
    const detail = body && body.detail;
    status.textContent = `Refused (HTTP ${response.status}): ${typeof detail === "string" ? detail : JSON.stringify(detail)}`;
    status.classList.add("error");
    return;
  }
  const item = body.feedback;
  tr.dataset.feedback = item.kind;
  status.textContent = `${body.created ? "Recorded" : "Already recorded"} #${item.id} by ${item.analyst}: ${body.effect}`;
}

function renderSummary(results) {
  const counts = {malicious: 0, suspicious: 0, benign: 0, error: 0};
  for (const r of results) counts[r.error ? "error" : r.verdict] += 1;
  const parts = [`${results.length} checked`, `${counts.malicious} malicious`, `${counts.suspicious} suspicious`,
                 `${counts.benign} benign`];
  if (counts.error) parts.push(`${counts.error} not scorable`);
  $("summary").textContent = parts.join(", ");
}

async function check(values) {
  if (values.length === 0) {
    setStatus("Enter at least one URL, domain or IP address.", true);
    return;
  }
  rememberKey();
  const tbody = $("results").querySelector("tbody");
  tbody.replaceChildren();
  $("results-section").hidden = false;
  $("check").disabled = true;
  const all = [];
  try {
    for (let start = 0; start < values.length; start += batchSize) {
      setStatus(`Scoring ${Math.min(start + batchSize, values.length)} of ${values.length}…`);
      const results = await scoreBatch(values.slice(start, start + batchSize));
      if (feedsLoaded === null) await loadModelName().catch(() => {});  // a key given since the page loaded
      results.forEach((result, i) => renderRow(tbody, start + i, result));
      all.push(...results);
      renderSummary(all);
    }
    setStatus("Done.");
  } catch (error) {
    if (error.needsKey) askForKey(error.message);
    else setStatus(error.message, true);
  } finally {
    $("check").disabled = false;
  }
}

async function loadModelName() {
  const response = await fetch("/v1/model", {headers: apiHeaders()});
  if (!response.ok) return;
  const card = await response.json();
  $("model-name").textContent = `${card.name} ${card.version}`;
  feedsLoaded = Boolean(card.feeds);
  if (card.limits && card.limits.max_batch) batchSize = Math.min(batchSize, card.limits.max_batch);
}

document.addEventListener("DOMContentLoaded", () => {
  const storedKey = sessionStorage.getItem(KEY_STORAGE);
  if (storedKey) {  // shown in its (password) field, so that the field is always what the page sends
    $("key-row").hidden = false;
    $("api-key").value = storedKey;
  }
  $("analyst").value = sessionStorage.getItem(ANALYST_STORAGE) || "";
  $("analyst").addEventListener("change", () => sessionStorage.setItem(ANALYST_STORAGE, $("analyst").value.trim()));
  $("score-form").addEventListener("submit", (event) => {
    event.preventDefault();
    check(valuesFromTextarea());
  });
  $("clear").addEventListener("click", () => {
    $("urls").value = "";
    $("file").value = "";
    $("results").querySelector("tbody").replaceChildren();
    $("results-section").hidden = true;
    setStatus("");
  });
  $("file").addEventListener("change", async () => {
    const file = $("file").files[0];
    if (!file) return;
    const values = valuesFromFile(await file.text());
    $("urls").value = values.join("\n");
    check(values);
  });
  loadModelName().catch(() => {});
});
