// CarePath's page behaviour: the NHS.UK components, and the pathway diagram (bpmn-js) with the
// instance's states or the author's validation problems drawn on it. Loaded as a module, after the page.
import { initAll } from "./vendor/nhsuk-frontend/10.6.1/nhsuk-frontend.min.js";

document.body.classList.add("js-enabled", "nhsuk-frontend-supported");
initAll();

// A sign-in link's page: the token leaves the address bar and the history (the page's form holds it).
if (document.querySelector("[data-forget-address]")) {
  history.replaceState(null, "", location.pathname);
}

const SIGNS = { done: "\u2713", ready: "\u25B6", active: "\u21BB", waiting: "\u23F2", error: "\u2715" };

function readJson(id) {
  const element = document.getElementById(id);
  return element ? JSON.parse(element.textContent) : null;
}

function badge(overlays, elementId, className, text, position) {
  const node = document.createElement("span");
  node.className = "cp-badge " + className;
  node.textContent = text;
  overlays.add(elementId, { position: position || { top: -14, left: -6 }, html: node });
}

async function showDiagram(container) {
  if (!window.BpmnJS) { return null; }
  const viewer = new window.BpmnJS({ container });
  try {
    let xml = container.dataset.xml ? readJson(container.dataset.xml) : null;
    if (xml === null) {
      const response = await fetch(container.dataset.diagramUrl, { credentials: "same-origin" });
      if (!response.ok) { throw new Error("diagram " + response.status); }
      xml = await response.text();
    }
    await viewer.importXML(xml);
  } catch (error) {
    container.textContent = container.dataset.failed;
    container.dataset.state = "failed";
    return null;
  }
  const canvas = viewer.get("canvas");
  const registry = viewer.get("elementRegistry");
  const overlays = viewer.get("overlays");
  canvas.zoom("fit-viewport");
  const marked = [];
  for (const item of readJson(container.dataset.progress || "") || []) {
    if (!registry.get(item.element)) { continue; }  // on a sub-pathway's diagram
    canvas.addMarker(item.element, "cp-state-" + item.state);
    const label = SIGNS[item.state] + (item.due_at ? " " + container.dataset.dueLabel + " " + item.due_at.slice(0, 10) : "");
    badge(overlays, item.element, "cp-badge-" + item.state, label);
    marked.push(item.element + ":" + item.state);
  }
  for (const problem of readJson(container.dataset.problems || "") || []) {
    if (problem.element && registry.get(problem.element)) {
      canvas.addMarker(problem.element, "cp-problem");
      badge(overlays, problem.element, "cp-badge-problem", "\u2715 " + container.dataset.problemLabel, { bottom: -6, left: -6 });
      marked.push(problem.element + ":problem");
    }
  }
  container.dataset.marked = marked.join(" ");  // what the browser tests read back
  container.dataset.state = "shown";
  document.querySelectorAll("[data-select-element]").forEach((button) => {
    button.addEventListener("click", () => {
      const id = button.dataset.selectElement;
      registry.forEach((element) => canvas.removeMarker(element, "cp-selected"));
      if (registry.get(id)) {
        canvas.addMarker(id, "cp-selected");
        canvas.scrollToElement(registry.get(id));
        container.dataset.selected = id;
        container.scrollIntoView({ block: "nearest" });
      }
    });
  });
  if (container.dataset.modeler) {
    // Saving puts the edited diagram in the form, which the server deploys through the usual gate.
    const form = document.getElementById("save-form");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const { xml } = await viewer.saveXML({ format: true });
      document.getElementById("diagram-field").value = xml;
      form.submit();  // no second submit event
    });
  }
  return viewer;
}

// What an element is, for comparing two versions: kind, name, where a flow goes, its condition,
// timer and the gateway's default flow. Labels and the diagram's root are not elements of their own.
function signature(element) {
  const bo = element.businessObject || {};
  const definitions = (bo.eventDefinitions || []).map((d) => [d.$type,
    d.timeDuration && d.timeDuration.body, d.timeDate && d.timeDate.body, d.timeCycle && d.timeCycle.body]);
  return JSON.stringify([element.type, bo.name || "", element.source && element.source.id,
    element.target && element.target.id, bo.conditionExpression && bo.conditionExpression.body,
    bo.default && bo.default.id, definitions]);
}

function elements(viewer) {
  const found = new Map();
  viewer.get("elementRegistry").forEach((element) => {
    if (element.type !== "label" && element.parent && element.businessObject && element.businessObject.id) {
      found.set(element.id, element);
    }
  });
  return found;
}

function markDiff(viewer, container, id, kind, sign) {
  viewer.get("canvas").addMarker(id, "cp-" + kind);
  badge(viewer.get("overlays"), id, "cp-badge-" + kind, sign);
  container.dataset.marked = ((container.dataset.marked || "") + " " + id + ":" + kind).trim();
}

async function showDiff(newerBox, olderBox) {
  const [newer, older] = await Promise.all([showDiagram(newerBox), showDiagram(olderBox)]);
  if (!newer || !older) { return; }
  const list = document.getElementById("changes");
  const after = elements(newer);
  const before = elements(older);
  const changes = [];
  for (const [id, element] of after) {
    if (!before.has(id)) {
      markDiff(newer, newerBox, id, "added", "+");
      changes.push(["added", id, element]);
    } else if (signature(element) !== signature(before.get(id))) {
      markDiff(newer, newerBox, id, "changed", "~");
      markDiff(older, olderBox, id, "changed", "~");
      changes.push(["changed", id, element]);
    }
  }
  for (const [id, element] of before) {
    if (!after.has(id)) {
      markDiff(older, olderBox, id, "removed", "-");
      changes.push(["removed", id, element]);
    }
  }
  list.textContent = "";
  for (const [kind, id, element] of changes) {
    const item = document.createElement("li");
    const word = document.createElement("strong");
    word.textContent = list.dataset[kind];
    item.append(word, ": " + (element.businessObject.name ? element.businessObject.name + " (" + id + ")" : id));
    item.dataset.change = id + ":" + kind;
    list.append(item);
  }
  if (!changes.length) { list.textContent = list.dataset.none; }
  list.dataset.state = "shown";
}

window.addEventListener("load", () => {
  const newer = document.querySelector("[data-diff-side=newer]");
  const older = document.querySelector("[data-diff-side=older]");
  if (newer && older) {
    showDiff(newer, older);
    return;
  }
  document.querySelectorAll(".cp-diagram").forEach(showDiagram);
});
