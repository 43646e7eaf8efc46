// The page offers only what the served model can do: languages and task from GET /v1/models
// (the default model, which whisper-1 stands for). Until it answers, everything stays as it is.
"use strict";

async function offerWhatIsServed() {
  const r = await fetch("/v1/models", { headers: voxAuth.headers() });
  if (!r.ok) return;
  const models = (await r.json()).data || [];
  const model = models.find((m) => m.default && m.id !== "whisper-1") || models[0];
  if (!model || !model.languages) return;
  const language = document.getElementById("language");
  for (const option of Array.from(language.options)) {
    const offered = option.value === "auto" || model.languages.includes(option.value);
    option.hidden = option.disabled = !offered;
  }
  if (language.selectedOptions[0]?.disabled) language.value = model.languages.includes("en") ? "en" : "auto";
  const translate = document.querySelector('#task option[value="translate"]');
  translate.hidden = translate.disabled = !model.translate;
  if (!model.translate) document.getElementById("task").value = "transcribe";
  document.getElementById("model-name").textContent = model.id;
}
offerWhatIsServed().catch(() => {});  // the page works as before without it
window.addEventListener("voxbus-key", () => offerWhatIsServed().catch(() => {}));  // a key was entered (auth.js)
