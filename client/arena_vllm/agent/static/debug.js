// The decision inspector page: rows from /debug/summary, details from /debug/trace/{id}.
// Everything that came from the game or the model is written with textContent, never as HTML.
"use strict";

const REFRESH_MS = 2000;
const state = { selected: null, timer: null };

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function ms(value) {
  return value === null || value === undefined ? "–" : `${Math.round(value)} ms`;
}

function json(value) {
  return JSON.stringify(value, null, 2);
}

function isFallback(decision) {
  return decision.fallback_reason !== null && decision.fallback_reason !== undefined;
}

function sourceBadge(decision) {
  const fallback = isFallback(decision);
  return el("span", fallback ? "badge fallback" : "badge", decision.source || "?");
}

function chip(agentId, decision) {
  const button = el("button", isFallback(decision) ? "chip fallback" : "chip");
  button.type = "button";
  button.dataset.traceId = decision.trace_id;
  button.dataset.agentId = agentId;
  button.dataset.tool = decision.tool;
  if (state.selected === decision.trace_id) button.classList.add("selected");
  button.append(el("span", "tool", decision.tool));
  if (decision.target) button.append(el("span", "target", decision.target));
  button.append(el("span", "meta", `t${decision.tick} · ${ms(decision.timings_ms.total)}`));
  button.title = isFallback(decision) ? `fallback: ${decision.fallback_reason}` : decision.reasoning;
  button.addEventListener("click", () => showTrace(decision.trace_id));
  return button;
}

function row(agent) {
  const last = agent.decisions[0];
  const tr = el("tr");
  tr.dataset.agentId = agent.agent_id;
  tr.append(el("td", "agent", agent.agent_id));
  const lastCell = el("td", "last");
  lastCell.append(el("strong", "tool", last.tool), " ", el("span", "target", last.target), " ", sourceBadge(last),
    el("div", "muted", `tick ${last.tick} · queue ${ms(last.timings_ms.queue)} · model ${ms(last.timings_ms.model)} · total ${ms(last.timings_ms.total)}`));
  tr.append(lastCell);
  tr.append(el("td", "reasoning", isFallback(last) ? `fallback: ${last.fallback_reason}` : last.reasoning));
  const recent = el("td", "recent");
  for (const decision of agent.decisions) recent.append(chip(agent.agent_id, decision));
  tr.append(recent);
  return tr;
}

async function getJson(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const summary = await getJson("/debug/summary?per_agent=8");
    const filter = document.getElementById("filter").value.trim();
    const agents = summary.agents.filter((a) => !filter || a.agent_id.includes(filter));
    document.getElementById("rows").replaceChildren(...agents.map(row));
    document.getElementById("empty").hidden = summary.agents.length > 0;
    const store = summary.store;
    document.getElementById("store").textContent =
      `${store.agents} agents · ${store.traces} traces · ${(store.bytes / 1024).toFixed(0)} of ${(store.max_bytes / 1024).toFixed(0)} KiB`;
    status.textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.loaded = "true";
  } catch (error) {
    status.textContent = `refresh failed: ${error.message}`;
  }
}

function fact(list, name, value) {
  list.append(el("dt", null, name), el("dd", null, value));
}

async function showTrace(traceId) {
  state.selected = traceId;
  document.querySelectorAll(".chip.selected").forEach((node) => node.classList.remove("selected"));
  document.querySelectorAll(".chip").forEach((node) => {
    if (node.dataset.traceId === traceId) node.classList.add("selected");
  });
  let trace;
  try {
    trace = await getJson(`/debug/trace/${encodeURIComponent(traceId)}`);
  } catch (error) {
    document.getElementById("status").textContent = `trace ${traceId}: ${error.message}`;
    return;
  }
  const call = (trace.calls || [])[trace.calls.length - 1] || null;
  const response = (call && call.response) || {};
  const pane = document.getElementById("detail");
  pane.hidden = false;
  pane.dataset.traceId = traceId;
  document.getElementById("detail-title").textContent = `${trace.agent_id} · tick ${trace.tick}`;
  const facts = document.getElementById("detail-facts");
  facts.replaceChildren();
  fact(facts, "decision", `${trace.decision.tool} ${JSON.stringify(trace.decision.params)}`);
  fact(facts, "source", trace.source);
  if (trace.fallback_reason) fact(facts, "fallback because", trace.fallback_reason);
  fact(facts, "timings", `queue ${ms(trace.timings_ms.queue)} · model ${ms(trace.timings_ms.model)} · total ${ms(trace.timings_ms.total)}`);
  if (response.model) fact(facts, "model", response.model);
  if (call && call.error) fact(facts, "call error", call.error);
  if (response.tool_call_error) fact(facts, "invalid call", response.tool_call_error);
  const prompt = trace.prompt || {};
  document.getElementById("detail-tokens").textContent =
    prompt.prompt_tokens !== null && prompt.prompt_tokens !== undefined ? `(${prompt.prompt_tokens} tokens)` : "";
  document.getElementById("detail-system").textContent = prompt.system_prompt || "(no model call)";
  document.getElementById("detail-prompt").textContent = prompt.user_prompt || "";
  const raw = [];
  if (response.raw_text) raw.push(response.raw_text);
  if (response.tool_call) raw.push(`tool call (${response.tool_call_source}): ${json(response.tool_call)}`);
  document.getElementById("detail-raw").textContent = raw.join("\n") || (call ? "(empty)" : "(no model call)");
  document.getElementById("detail-decision").textContent = json(trace.decision);
  document.getElementById("detail-tools").textContent = call ? json(call.tools) : "(no model call)";
  document.getElementById("detail-observation").textContent = json(trace.observation);
}

function setLive(on) {
  clearInterval(state.timer);
  state.timer = on ? setInterval(refresh, REFRESH_MS) : null;
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("live").addEventListener("change", (event) => setLive(event.target.checked));
  document.getElementById("filter").addEventListener("input", refresh);
  refresh();
  setLive(true);
});
