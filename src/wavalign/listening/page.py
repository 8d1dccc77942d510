"""The rating page the server sends: static HTML and script, the same for every session and rater.

It names no system and no folder; everything a trial needs comes from /api/trials (prompt text, opaque audio URLs).
A vote can be cast once both replies have been heard to the end, and counts only when the server acknowledges it
(the server has fsync'd it by then). Reloading resumes at the first trial this rater has not voted on.
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Listening test</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:sans-serif;max-width:46em;margin:1.5em auto;padding:0 1em;line-height:1.4}
.box{border:1px solid #ccc;border-radius:6px;padding:.8em;margin:.6em 0}.muted{color:#777}
.replies{display:flex;gap:1em}.replies .box{flex:1}button{padding:.4em 1em;font-size:100%}
table{border-collapse:collapse}td,th{padding:.3em .7em;text-align:center}th{text-align:left}
#status{min-height:1.4em;color:#a00}.heard{color:#070}
</style></head><body>
<h1>Listening test</h1>
<div id="login" class="box" hidden>
  <label>Your rater id: <input id="rater-input" autocomplete="off" maxlength="64"></label>
  <button id="rater-go">Start</button>
  <p class="muted">Use the same id each time: you continue where you stopped.</p>
</div>
<div id="work" hidden>
  <p><span id="progress"></span> &middot; rater <b id="rater-name"></b> &middot;
     <span class="muted">each vote is saved when you submit it; close the page whenever you like and come back later.</span></p>
  <div class="box"><b>Prompt:</b> <span id="question"></span>
    <div id="q-audio" hidden><button id="play-q">&#9654; Play the spoken prompt</button></div></div>
  <div class="replies">
    <div class="box"><b>Reply 1</b><br><button id="play-a">&#9654; Play reply 1</button> <span id="heard-a"></span>
      <p id="text-a" class="muted"></p></div>
    <div class="box"><b>Reply 2</b><br><button id="play-b">&#9654; Play reply 2</button> <span id="heard-b"></span>
      <p id="text-b" class="muted"></p></div>
  </div>
  <table id="criteria"></table>
  <p><button id="submit" disabled>Submit and continue</button> <span class="muted" id="hint"></span></p>
</div>
<div id="done" class="box" hidden>All trials are rated. Thank you!</div>
<p id="status"></p>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let rater = null, data = null, queue = [], current = null, heard = {}, clips = {};

function setStatus(text) { $("status").textContent = text; }

function start(id) {
  rater = id;
  localStorage.setItem("rater", id);
  const url = new URL(location.href); url.searchParams.set("rater", id); history.replaceState(null, "", url);
  $("login").hidden = true;
  fetch("/api/trials?rater=" + encodeURIComponent(id)).then(async (r) => {
    const body = await r.json();
    if (!r.ok) { setStatus(body.error); $("login").hidden = false; return; }
    data = body;
    const done = new Set(body.done);
    queue = body.trials.filter((t) => !done.has(t.id));
    $("rater-name").textContent = id;
    buildCriteria();
    next();
  }).catch((e) => setStatus("Could not reach the server: " + e));
}

function buildCriteria() {
  const rows = ["<tr><th></th><th>Reply 1 better</th><th>Tie</th><th>Reply 2 better</th></tr>"];
  for (const c of data.criteria) {
    const cells = ["a", "tie", "b"].map((v) =>
      `<td><input type="radio" name="crit-${c}" value="${v}" aria-label="${c} ${v}"></td>`).join("");
    rows.push(`<tr><th>${c}</th>${cells}</tr>`);
  }
  $("criteria").innerHTML = rows.join("");
  $("criteria").addEventListener("change", refresh);
}

function clip(side, url) {
  if (clips[side]) { clips[side].pause(); }
  clips[side] = url ? new Audio(url) : null;
  if (clips[side]) {
    clips[side].addEventListener("ended", () => { heard[side] = true; $("heard-" + side).textContent = "heard"; refresh(); });
  }
}

function next() {
  const total = data.trials.length;
  if (!queue.length) { $("work").hidden = true; $("done").hidden = false; return; }
  current = queue[0];
  $("work").hidden = false;
  $("progress").textContent = `Trial ${total - queue.length + 1} of ${total}`;
  $("question").textContent = current.question;
  $("q-audio").hidden = !current.question_audio;
  clip("q", current.question_audio);
  for (const side of ["a", "b"]) {
    const reply = current[side];
    heard[side] = !reply.audio;
    clip(side, reply.audio);
    $("play-" + side).hidden = !reply.audio;
    $("heard-" + side).textContent = "";
    $("heard-" + side).className = "heard";
    $("text-" + side).textContent = reply.text === null ? "" : (reply.text || "(no text)");
  }
  for (const input of document.querySelectorAll("#criteria input")) input.checked = false;
  refresh();
}

function answers() {
  const out = {};
  for (const c of data.criteria) {
    const picked = document.querySelector(`input[name="crit-${c}"]:checked`);
    if (!picked) return null;
    out[c] = picked.value;
  }
  return out;
}

function refresh() {
  const ready = heard.a && heard.b;
  $("hint").textContent = ready ? (answers() ? "" : "answer every row") : "listen to both replies to the end first";
  $("submit").disabled = !(ready && answers());
}

function submit() {
  const choices = answers();
  $("submit").disabled = true;
  fetch("/api/vote", {method: "POST", headers: {"Content-Type": "application/json"},
                      body: JSON.stringify({rater: rater, trial: current.id, choices: choices})})
    .then(async (r) => {
      const body = await r.json();
      if (r.ok || body.duplicate) { setStatus(""); queue.shift(); next(); }
      else { setStatus("Not saved: " + body.error); refresh(); }
    })
    .catch((e) => { setStatus("Not saved (server unreachable), try again: " + e); refresh(); });
}

$("play-a").addEventListener("click", () => clips.a.play());
$("play-b").addEventListener("click", () => clips.b.play());
$("play-q").addEventListener("click", () => clips.q.play());
$("submit").addEventListener("click", submit);
$("rater-go").addEventListener("click", () => { const v = $("rater-input").value.trim(); if (v) start(v); });
const given = new URL(location.href).searchParams.get("rater") || localStorage.getItem("rater");
if (given) start(given); else $("login").hidden = false;
</script></body></html>
"""
