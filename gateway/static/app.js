// voxbus web page: microphone -> /stream (16 kHz Float32), live partials and finals,
// file upload with progress, and the session as SRT/VTT/TXT. No build step, no CDN.
"use strict";

const $ = (id) => document.getElementById(id);
const finals = [];          // {start, end, text, speaker?} in seconds on the transcript's timeline
let live = null;            // {ws, context, stream, source, node, offset}
let fileOffset = 0;         // uploaded files are placed after everything already in the transcript

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function clock(seconds, sep) {
  const ms = Math.max(0, Math.round(seconds * 1000));
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(Math.floor(ms / 3600000))}:${pad(Math.floor(ms / 60000) % 60)}:` +
         `${pad(Math.floor(ms / 1000) % 60)}${sep}${pad(ms % 1000, 3)}`;
}

// Each speaker keeps one colour for the page's life, in the order they were first heard.
const SPEAKER_COLOURS = 6;   // .speaker-c0 ... .speaker-c5 in style.css
const speakerColour = new Map();
function colourOf(speaker) {
  if (!speakerColour.has(speaker)) speakerColour.set(speaker, speakerColour.size % SPEAKER_COLOURS);
  return speakerColour.get(speaker);
}

function addFinal(start, end, text, speaker) {
  text = (text || "").trim();
  if (!text) return;
  finals.push(speaker ? { start, end, text, speaker } : { start, end, text });
  $("placeholder").hidden = true;
  const p = document.createElement("p");
  p.className = "final";
  const time = document.createElement("span");
  time.className = "time";
  time.textContent = clock(start, ".").slice(3, 8);
  p.append(time);
  if (speaker) {  // who spoke (speakers=true live, diarize=true files): a label, its own class
    const who = document.createElement("span");
    who.className = `speaker speaker-c${colourOf(speaker)}`;
    who.textContent = speaker;
    p.append(who);
  }
  p.append(document.createTextNode(text));
  $("transcript").insertBefore(p, $("partial"));
  $("transcript").scrollTop = $("transcript").scrollHeight;
}

// A final with speakers whose segments change speaker shows one line per segment.
function showFinal(base, event) {
  const segments = event.segments || [];
  if (event.speaker && new Set(segments.map((s) => s.speaker)).size > 1) {
    for (const s of segments) addFinal(base + s.start, base + s.end, s.text, s.speaker);
  } else addFinal(base + event.start, base + event.end, event.text, event.speaker);
}

function setPartial(text) {
  $("partial").textContent = text || "";
  if (text) $("placeholder").hidden = true;
}

// ---- live microphone -------------------------------------------------------

function streamUrl() {
  const q = new URLSearchParams({
    language: $("language").value, task: $("task").value, sample_rate: "16000",
    encoding: "f32", partials: "true", end_silence_ms: $("end-silence").value,
  });
  if ($("speakers").checked) q.set("speakers", "true");
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/stream?${q}`;
}

function onEvent(event) {
  const base = live ? live.offset : 0;
  if (event.type === "ready") setStatus(`Listening (session ${event.session}).`);
  else if (event.type === "vad") setStatus(event.event === "speech_start" ? "Hearing speech…" : "Listening.");
  else if (event.type === "partial") setPartial(event.text);
  else if (event.type === "final") { setPartial(""); showFinal(base, event); }
  else if (event.type === "error") setStatus(`Error ${event.code}: ${event.message}`, true);
}

function showLevel(rms) {
  const db = 20 * Math.log10(rms + 1e-9);            // dBFS
  const bar = $("level");
  bar.style.width = `${Math.max(0, Math.min(100, (db + 60) * (100 / 60)))}%`;  // -60..0 dBFS
  bar.className = db > -3 ? "clipping" : db > -12 ? "loud" : "";
}

// The microphone and the audio graph. If any step fails, what was already opened is released here:
// nothing else holds it yet, and a forgotten track keeps the browser's recording indicator on.
async function openAudio() {
  let stream = null;
  let context = null;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    context = new AudioContext();
    await context.audioWorklet.addModule("worklet.js");
    const node = new AudioWorkletNode(context, "pcm-16k");
    const mute = context.createGain();
    mute.gain.value = 0;   // pulled by the destination so the graph runs, but silent
    const source = context.createMediaStreamSource(stream);
    source.connect(node).connect(mute).connect(context.destination);
    return { stream, context, source, node };
  } catch (err) {
    if (stream) stream.getTracks().forEach((t) => t.stop());
    if (context) context.close();
    throw err;
  }
}

// After eof (or on close) no more audio may go out: a stopped track still feeds the worklet silence.
function detachAudio(audio) {
  audio.stream.getTracks().forEach((t) => t.stop());
  audio.node.port.onmessage = null;
  audio.node.port.postMessage("stop");
  audio.source.disconnect();
  audio.node.disconnect();
}

async function startMic() {
  const audio = await openAudio();
  const { node } = audio;
  const ws = new WebSocket(streamUrl(), voxAuth.protocols());
  ws.binaryType = "arraybuffer";
  live = { ...audio, ws, offset: finals.length ? finals[finals.length - 1].end : 0 };
  node.port.onmessage = ({ data }) => {
    if (data.level !== undefined) showLevel(data.level);
    if (data.pcm && ws.readyState === WebSocket.OPEN) ws.send(data.pcm.buffer);
  };
  ws.onmessage = (msg) => onEvent(JSON.parse(msg.data));
  ws.onclose = (close) => {
    voxAuth.refused(close.code, close.reason);
    setStatus(close.code === 1000 ? "Microphone off." : `Stream closed (${close.code} ${close.reason}).`,
              close.code !== 1000);
    stopAudio();
  };
  ws.onerror = () => setStatus("Cannot reach the /stream WebSocket.", true);
  $("mic").textContent = "Stop";
  $("mic").classList.add("recording");
}

function stopAudio() {
  if (!live) return;
  detachAudio(live);
  live.context.close();
  $("level").style.width = "0";
  $("mic").textContent = "Start microphone";
  $("mic").classList.remove("recording");
  live = null;
}

function stopMic() {
  if (!live) return;
  setStatus("Finishing the last sentence…");
  detachAudio(live);
  if (live.ws.readyState === WebSocket.OPEN) live.ws.send(JSON.stringify({ type: "eof" }));
  else stopAudio();
}

$("mic").addEventListener("click", () => {
  if (live) { stopMic(); return; }
  startMic().catch((err) => { setStatus(`Microphone unavailable: ${err.message}`, true); stopAudio(); });
});

// ---- file upload -------------------------------------------------------------

// The file goes to /transcribe?progress=true: the bar shows the upload, then the segments as asr
// finishes them (Server-Sent Events read as they arrive), and the last event carries the answer.
function uploadEvents(xhr, seen) {
  const blocks = xhr.responseText.slice(seen.length).split("\n\n");
  const complete = blocks.slice(0, -1);
  seen.length += complete.reduce((n, b) => n + b.length + 2, 0);
  return complete.map((block) => {
    const event = (block.match(/^event: (.*)$/m) || [])[1];
    const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("");
    return event && data ? { event, data: JSON.parse(data) } : null;
  }).filter(Boolean);
}

function showFile(file, body) {
  fileOffset = finals.length ? finals[finals.length - 1].end : 0;
  for (const s of body.segments || []) addFinal(fileOffset + s.start, fileOffset + s.end, s.text, s.speaker);
  if (!(body.segments || []).length) addFinal(fileOffset, fileOffset + (body.duration || 0), body.text);
  $("upload-status").textContent = `${file.name}: ${body.duration?.toFixed(1)} s transcribed.`;
}

$("upload").addEventListener("submit", (e) => {
  e.preventDefault();
  const file = $("file").files[0];
  if (!file) { $("upload-status").textContent = "Choose a file first."; return; }
  const form = new FormData();
  form.append("audio_file", file);
  form.append("response_format", "verbose_json");
  form.append("task", $("task").value);
  form.append("language", $("language").value);
  if ($("speakers").checked) form.append("diarize", "true");
  const xhr = new XMLHttpRequest();
  const seen = { length: 0 };
  xhr.open("POST", "/transcribe?progress=true");
  Object.entries(voxAuth.headers()).forEach(([name, value]) => xhr.setRequestHeader(name, value));
  xhr.upload.onprogress = (p) => { if (p.lengthComputable) $("progress").value = (100 * p.loaded) / p.total; };
  xhr.upload.onload = () => { $("progress").value = 0; $("upload-status").textContent = "Uploaded; transcribing…"; };
  xhr.onprogress = () => {
    for (const { event, data } of uploadEvents(xhr, seen)) {
      if (event === "job_segments") $("upload-status").textContent = `Transcribing: 0 of ${data.count} parts…`;
      else if (event === "final") {
        $("progress").value = (100 * data.done) / data.count;
        $("upload-status").textContent = `Transcribing: ${data.done} of ${data.count} parts…`;
      } else if (event === "done") showFile(file, data);
      else if (event === "error") $("upload-status").textContent = `Failed: ${data.error?.message}`;
    }
  };
  xhr.onload = () => {
    xhr.onprogress();
    if (xhr.status === 200) return;
    let body = {};
    try { body = JSON.parse(xhr.responseText); } catch (err) { body = { error: { message: xhr.responseText } }; }
    voxAuth.refused(xhr.status, body.error?.message);
    $("upload-status").textContent = `Failed: ${body.error?.message || xhr.status}`;
  };
  xhr.onerror = () => { $("upload-status").textContent = "Upload failed: the server cannot be reached."; };
  $("progress").value = 0;
  $("upload-status").textContent = `Uploading ${file.name}…`;
  xhr.send(form);
});

// ---- downloads ---------------------------------------------------------------

function render(format) {
  if (format === "txt") return finals.map((f) => f.text).join("\n") + "\n";
  if (format === "vtt") {
    return "WEBVTT\n\n" + finals.map((f) => `${clock(f.start, ".")} --> ${clock(f.end, ".")}\n` +
                                     `${f.speaker ? `<v ${f.speaker}>` : ""}${f.text}\n`).join("\n");
  }
  return finals.map((f, i) => `${i + 1}\n${clock(f.start, ",")} --> ${clock(f.end, ",")}\n${f.text}\n`).join("\n");
}

document.querySelectorAll("button.download").forEach((button) => {
  button.addEventListener("click", () => {
    const format = button.dataset.format;
    const blob = new Blob([render(format)], { type: "text/plain;charset=utf-8" });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = `voxbus-session.${format}`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  });
});

$("clear").addEventListener("click", () => {
  finals.length = 0;
  document.querySelectorAll("#transcript .final").forEach((p) => p.remove());
  setPartial("");
  $("placeholder").hidden = false;
});

// ---- health badge --------------------------------------------------------------

async function checkHealth() {
  try {
    const r = await fetch("/health", { headers: voxAuth.headers() });
    const body = await r.json();
    $("health").textContent = r.ok ? "ready" : `not ready: ${(body.missing || []).join(", ")}`;
    $("health").className = `badge ${r.ok ? "ok" : "bad"}`;
  } catch (err) {
    $("health").textContent = "gateway unreachable";
    $("health").className = "badge bad";
  }
}
checkHealth();
setInterval(checkHealth, 5000);
