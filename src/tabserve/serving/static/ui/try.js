// The try-it form: one row to the V2 endpoint as one tensor per feature; the answer or the
// 422 details shown next to the field each one names.
"use strict";
(function () {
  const form = document.getElementById("try");
  if (!form) return;
  const model = form.dataset.model;
  const classes = JSON.parse(form.dataset.classes || "[]");
  const features = JSON.parse(form.dataset.features || "[]");
  const result = document.getElementById("result");
  const output = document.getElementById("prediction");
  const probaTable = document.getElementById("proba");
  const formError = document.getElementById("form-error");
  const fields = {};
  form.querySelectorAll(".field").forEach((div) => { fields[div.dataset.feature] = div; });

  function control(div) { return div.querySelector("input, select"); }

  function clearErrors() {
    Object.values(fields).forEach((div) => {
      const err = div.querySelector(".error");
      err.textContent = "";
      err.hidden = true;
      control(div).removeAttribute("aria-invalid");
    });
    formError.hidden = true;
    formError.textContent = "";
  }

  function showFieldError(name, message) {
    const div = fields[name];
    const err = div.querySelector(".error");
    err.textContent = err.textContent ? err.textContent + " " + message : message;
    err.hidden = false;
    control(div).setAttribute("aria-invalid", "true");
  }

  function tensor(div) {
    const el = control(div);
    const raw = el.value.trim();
    if (div.dataset.kind === "category") {
      return { name: div.dataset.feature, shape: [1], datatype: "BYTES", data: [raw === "" ? null : raw] };
    }
    // An empty number is sent as null (missing): the server decides whether that is allowed.
    return { name: div.dataset.feature, shape: [1], datatype: "FP64", data: [raw === "" ? null : Number(raw)] };
  }

  function showPrediction(body) {
    const byName = {};
    (body.outputs || []).forEach((o) => { byName[o.name] = o; });
    output.textContent = byName.predict ? String(byName.predict.data[0]) : "?";
    const tbody = probaTable.querySelector("tbody");
    tbody.replaceChildren();
    const proba = byName.predict_proba;
    if (proba) {
      proba.data.slice(0, classes.length).forEach((p, i) => {
        const tr = document.createElement("tr");
        const th = document.createElement("th");
        th.scope = "row";
        th.textContent = String(classes[i]);
        const td = document.createElement("td");
        td.className = "num";
        td.textContent = (100 * p).toFixed(2) + " %";
        const bar = document.createElement("td");
        const meter = document.createElement("meter");
        meter.min = 0; meter.max = 1; meter.value = p;
        meter.textContent = td.textContent;
        bar.appendChild(meter);
        tr.append(th, td, bar);
        tbody.appendChild(tr);
      });
    }
    probaTable.hidden = !proba;
    result.hidden = false;
  }

  function showErrors(body, status) {
    const details = Array.isArray(body.details) ? body.details : [];
    let placed = false;
    details.forEach((d) => {
      const name = (d.loc || []).find((part) => typeof part === "string" && fields[part]);
      if (name) { showFieldError(name, d.msg); placed = true; }
    });
    if (!placed) {
      formError.textContent = "Error " + status + ": " + (body.error || "the server refused the request");
      formError.hidden = false;
    }
    const first = form.querySelector("[aria-invalid=true]");
    if (first) first.focus();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    result.hidden = true;
    const request = { inputs: features.map((name) => tensor(fields[name])) };
    let response, body;
    try {
      response = await fetch("/v2/models/" + encodeURIComponent(model) + "/infer", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(request),
      });
      body = await response.json();
    } catch (err) {
      formError.textContent = "The server did not answer: " + err;
      formError.hidden = false;
      return;
    }
    if (response.ok) showPrediction(body); else showErrors(body, response.status);
  });

  document.getElementById("fill-example").addEventListener("click", () => {
    Object.values(fields).forEach((div) => { control(div).value = div.dataset.example; });
    clearErrors();
  });
})();
