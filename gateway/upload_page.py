"""The browser page behind GET /: pick a photo, see the label. Inline CSS/JS, no build, no CDN."""

UPLOAD_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Cat or dog?</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 36rem; margin: 3rem auto;
         padding: 0 1rem; color: #222; }
  h1 { font-size: 1.6rem; }
  .drop { border: 2px dashed #888; border-radius: .6rem; padding: 1.5rem; text-align: center; }
  img#preview { max-width: 100%; max-height: 18rem; margin-top: 1rem; display: none; border-radius: .4rem; }
  #result { margin-top: 1.2rem; font-size: 1.3rem; min-height: 2rem; }
  #result.error { color: #b00020; font-size: 1rem; }
  .bar { height: .6rem; background: #eee; border-radius: .3rem; margin: .2rem 0 .6rem; }
  .bar > span { display: block; height: 100%; background: #3a7; border-radius: .3rem; }
  small { color: #666; }
</style>
</head>
<body>
<h1>Cat or dog?</h1>
<div class="drop">
  <label for="file">Choose a photo (JPEG, PNG, WebP, GIF, BMP)</label><br><br>
  <input type="file" id="file" name="file" accept="image/*">
  <img id="preview" alt="the chosen photo">
</div>
<div id="result" role="status" aria-live="polite"></div>
<div id="bars"></div>
<small id="meta"></small>
<script>
const input = document.getElementById("file");
const result = document.getElementById("result");
const bars = document.getElementById("bars");
const meta = document.getElementById("meta");
const preview = document.getElementById("preview");

function text(el, value) { el.textContent = value; }

input.addEventListener("change", async () => {
  const file = input.files[0];
  if (!file) { return; }
  preview.src = URL.createObjectURL(file);
  preview.style.display = "block";
  result.className = "";
  result.removeAttribute("data-label");
  text(result, "Thinking…");
  bars.replaceChildren();
  text(meta, "");
  const form = new FormData();
  form.append("file", file);
  try {
    const response = await fetch("predict", { method: "POST", body: form });
    const body = await response.json();
    if (!response.ok) {
      result.className = "error";
      text(result, "Could not classify this file: " + (body.detail || body.error || response.status));
      return;
    }
    const pct = (p) => (100 * p).toFixed(1) + "%";
    result.dataset.label = body.predicted_class;
    const hedge = body.uncertain ? "Probably a " : "A ";
    text(result, hedge + body.predicted_class + " — " + pct(body.confidence));
    for (const [name, p] of Object.entries(body.probabilities)) {
      const label = document.createElement("div");
      text(label, name + " " + pct(p));
      const bar = document.createElement("div");
      bar.className = "bar";
      const fill = document.createElement("span");
      fill.style.width = pct(p);
      bar.appendChild(fill);
      bars.append(label, bar);
    }
    text(meta, "model version " + body.model_version + " · " + body.processing_time_ms
      + " ms · request " + body.request_id);
  } catch (err) {
    result.className = "error";
    text(result, "The service is not reachable: " + err);
  }
});
</script>
</body>
</html>
"""
