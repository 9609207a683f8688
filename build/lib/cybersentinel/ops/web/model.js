// The model card page: renders GET /v1/model as definition lists (textContent only).
"use strict";

function fill(id, entries) {
  const dl = document.getElementById(id);
  dl.replaceChildren();
  for (const [name, value] of entries) {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = typeof value === "object" && value !== null ? JSON.stringify(value) : String(value);
    dl.append(dt, dd);
  }
  if (entries.length === 0) {
    const dd = document.createElement("dd");
    dd.textContent = "not available";
    dl.append(dd);
  }
}

function scalars(object) {
  return Object.entries(object || {}).filter(([, v]) => typeof v !== "object" || v === null);
}

document.addEventListener("DOMContentLoaded", async () => {
  const status = document.getElementById("status");
  const key = sessionStorage.getItem("cybersentinel-api-key");
  const response = await fetch("/v1/model", {headers: key ? {"X-API-Key": key} : {}});
  if (!response.ok) {
    status.textContent = response.status === 401
      ? "This server needs an API key: enter it on the checker page first."
      : `Could not load the model card (HTTP ${response.status}).`;
    return;
  }
  const card = await response.json();
  document.getElementById("title").textContent = `${card.name}, version ${card.version}`;
  fill("identity", [["model", card.model], ["trained on", card.dataset], ["input", card.inputs.join(", ")],
                    ["features", card.features], ["loaded from", card.source],
                    ["package version", card.package_version]]);
  fill("decision", [["malicious from score", card.threshold], ["suspicious from score", card.suspicious_from],
                    ["max URLs per request", card.limits.max_batch]]);
  const test = card.test_metrics || {};
  const bySource = Object.entries(test.by_source || {}).map(
    ([source, m]) => [`${source} (${m.rows} rows)`, `ROC AUC ${m.roc_auc}, accuracy ${m.accuracy}, F1 ${m.f1}`]);
  fill("test-metrics", [...scalars(test.test || test), ...bySource]);
  fill("validation-metrics", scalars(card.validation_metrics));
  fill("hashes", Object.entries(card.hashes));
  fill("feeds", Object.entries(card.feeds || {}).map(([name, f]) => [
    name, f.sha256 ? `${f.entries} entries, fetched ${f.fetched_at}, sha256 ${f.sha256}` : "loaded (no feeds.json record)"]));
  document.getElementById("card").hidden = false;
});
