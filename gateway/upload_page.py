"""The browser page behind GET /: shelter staff drop several photos, see each label, fix wrong ones.

Inline CSS/JS, no build, no CDN. Every photo is one POST /predict; a correction is one click that
POSTs /feedback (with the X-API-Key typed into the page, kept in sessionStorage: this tab only), so
the live accuracy in GET /stats counts what staff saw and fixed. Untrusted text (file names, labels)
only ever reaches the page through textContent.
"""

UPLOAD_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Cat or dog?</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 48rem; margin: 2rem auto;
         padding: 0 1rem; color: #222; }
  h1 { font-size: 1.6rem; }
  .drop { border: 2px dashed #888; border-radius: .6rem; padding: 1.5rem; text-align: center; }
  .drop.over { border-color: #3a7; background: #f2fbf6; }
  details { margin: .8rem 0; }
  #summary { margin: .8rem 0; min-height: 1.2rem; }
  #results { list-style: none; padding: 0; display: grid; gap: .8rem;
             grid-template-columns: repeat(auto-fill, minmax(14rem, 1fr)); }
  .card { border: 1px solid #ddd; border-radius: .5rem; padding: .6rem; }
  .card img { width: 100%; height: 10rem; object-fit: cover; border-radius: .3rem; }
  .name { font-size: .8rem; color: #666; overflow-wrap: anywhere; }
  .label { font-size: 1.2rem; margin: .3rem 0; }
  .card.error .label { color: #b00020; font-size: .95rem; }
  .flag { display: inline-block; background: #fff3cd; color: #7a5b00; border-radius: .3rem;
          padding: 0 .4rem; font-size: .85rem; }
  .fix button { margin: .2rem .3rem .2rem 0; padding: .3rem .6rem; cursor: pointer; }
  .fix button.chosen { background: #3a7; color: #fff; border-color: #3a7; }
  .status { font-size: .85rem; min-height: 1rem; }
  .status.error { color: #b00020; }
  small { color: #666; }
</style>
</head>
<body>
<h1>Cat or dog?</h1>
<div class="drop" id="drop">
  <label for="file">Drop photos here, or choose several (JPEG, PNG, WebP, GIF, BMP)</label><br><br>
  <input type="file" id="file" name="file" accept="image/*" multiple>
</div>
<details id="keybox">
  <summary>API key (needed to save corrections when the service has one)</summary>
  <input type="password" id="apikey" autocomplete="off" aria-label="API key">
  <small>kept in this browser tab only</small>
</details>
<div id="summary" role="status" aria-live="polite"></div>
<ul id="results"></ul>
<script>
const input = document.getElementById("file");
const drop = document.getElementById("drop");
const results = document.getElementById("results");
const summary = document.getElementById("summary");
const keyField = document.getElementById("apikey");
const KEY_SLOT = "cats-dogs-api-key";
const PARALLEL = 3;  // a shelter's batch of photos must not flood the service

keyField.value = sessionStorage.getItem(KEY_SLOT) || "";
keyField.addEventListener("input", () => sessionStorage.setItem(KEY_SLOT, keyField.value));

function el(tag, className, value) {
  const node = document.createElement(tag);
  if (className) { node.className = className; }
  if (value !== undefined) { node.textContent = value; }
  return node;
}
const pct = (p) => (100 * p).toFixed(1) + "%";

function updateSummary() {
  const cards = [...results.children];
  const done = cards.filter((c) => c.dataset.label).length;
  const unsure = cards.filter((c) => c.dataset.uncertain === "true").length;
  const fixed = cards.filter((c) => c.dataset.feedback).length;
  summary.textContent = done + " of " + cards.length + " photos labelled"
    + (unsure ? " · " + unsure + " uncertain, please check" : "")
    + (fixed ? " · " + fixed + " confirmed or corrected" : "");
}

async function sendFeedback(card, trueLabel, buttons) {
  const status = card.querySelector(".status");
  status.className = "status";
  status.textContent = "Saving…";
  const headers = { "Content-Type": "application/json" };
  if (keyField.value) { headers["X-API-Key"] = keyField.value; }
  try {
    const response = await fetch("feedback", {
      method: "POST",
      headers,
      body: JSON.stringify({ request_id: card.dataset.requestId, true_label: trueLabel }),
    });
    const body = await response.json().catch(() => ({}));
    if (response.status === 401) {
      document.getElementById("keybox").open = true;
      keyField.focus();
      throw new Error("this service needs the API key: enter it above, then click again");
    }
    if (!response.ok) { throw new Error(body.detail || body.error || "HTTP " + response.status); }
    card.dataset.feedback = trueLabel;
    for (const b of buttons) {
      b.disabled = true;
      b.classList.toggle("chosen", b.dataset.trueLabel === trueLabel);
    }
    status.textContent = trueLabel === card.dataset.label
      ? "Saved: confirmed " + trueLabel : "Saved: corrected to " + trueLabel;
    updateSummary();
  } catch (err) {
    status.className = "status error";
    status.textContent = "Not saved: " + (err.message || err);
  }
}

function showPrediction(card, body) {
  card.dataset.label = body.predicted_class;
  card.dataset.confidence = String(body.confidence);
  card.dataset.uncertain = String(Boolean(body.uncertain));
  card.dataset.requestId = body.request_id;
  const label = card.querySelector(".label");
  label.textContent = body.predicted_class + " — " + pct(body.confidence);
  if (body.uncertain) { label.after(el("span", "flag", "uncertain: please check")); }
  const fix = el("div", "fix");
  const buttons = [];
  for (const name of Object.keys(body.probabilities)) {
    const right = name === body.predicted_class;
    const button = el("button", "", right ? "✓ Right: " + name : "✗ No, it's a " + name);
    button.type = "button";
    button.dataset.trueLabel = name;
    button.addEventListener("click", () => sendFeedback(card, name, buttons));
    buttons.push(button);
    fix.append(button);
  }
  card.querySelector(".status").before(fix);
  card.querySelector(".meta").textContent = "model version " + body.model_version + " · "
    + body.processing_time_ms + " ms · request " + body.request_id;
}

async function classify(file, card) {
  const form = new FormData();
  form.append("file", file);
  try {
    const response = await fetch("predict", { method: "POST", body: form });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new Error("could not classify this file: " + (body.detail || body.error || response.status));
    }
    showPrediction(card, body);
  } catch (err) {
    card.classList.add("error");
    card.dataset.error = "true";
    card.querySelector(".label").textContent = err.message.startsWith("could not")
      ? err.message : "the service is not reachable: " + err;
  }
  updateSummary();
}

async function handle(files) {
  const queue = [];
  for (const file of files) {
    const card = el("li", "card");
    card.dataset.file = file.name;
    const image = el("img");
    image.alt = file.name;
    image.src = URL.createObjectURL(file);
    card.append(image, el("div", "name", file.name), el("div", "label", "Thinking…"),
      el("div", "status"), el("small", "meta"));
    results.prepend(card);
    queue.push([file, card]);
  }
  updateSummary();
  const worker = async () => {
    while (queue.length) {
      const [file, card] = queue.shift();
      await classify(file, card);
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
}

input.addEventListener("change", () => { handle([...input.files]); input.value = ""; });
for (const type of ["dragenter", "dragover"]) {
  drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
}
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  handle([...e.dataTransfer.files].filter((f) => f.type.startsWith("image/") || !f.type));
});
</script>
</body>
</html>
"""
