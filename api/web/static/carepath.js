// CarePath's page behaviour: the NHS.UK components, and the pathway diagram (bpmn-js) with the
// instance's states or the author's validation problems drawn on it. Loaded as a module, after the page.
import { initAll } from "./vendor/nhsuk-frontend/10.6.1/nhsuk-frontend.min.js";

document.body.classList.add("js-enabled", "nhsuk-frontend-supported");
initAll();

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
  if (!window.BpmnJS) { return; }
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
    return;
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
}

window.addEventListener("load", () => {
  document.querySelectorAll(".cp-diagram").forEach(showDiagram);
});
