// dialoop web page. Plain JavaScript, no build step, no dependencies: it talks to the same
// HTTP API as any client (/v1 to chat, /api for the rest). Text from the server is always
// put in the page with textContent, never as HTML.
'use strict';

const state = {
  key: localStorage.getItem('dialoop-key') || '',
  session: null,        // id of the session being shown
  features: {},         // from /api/health: which parts of the API this server has
  me: null,             // {user, role, auth}
  controller: null,     // AbortController of the answer being streamed
  learningTimer: null,  // refreshes the learning page while it is shown
  images: [],           // data URLs of the images attached to the next message
  recorder: null,       // the MediaRecorder while the microphone records
};

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, props = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k in node) node[k] = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
};

// -- API ---------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message, code) { super(message); this.status = status; this.code = code; }
}

async function api(path, { method = 'GET', json, form, headers = {}, signal } = {}) {
  const h = { ...headers };
  if (state.key) h.Authorization = `Bearer ${state.key}`;
  let body = form;  // FormData: the browser sets its multipart Content-Type
  if (json !== undefined) { h['Content-Type'] = 'application/json'; body = JSON.stringify(json); }
  const res = await fetch(path, { method, headers: h, body, signal });
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`, code = null;
    try { const e = (await res.json()).error; message = e.message; code = e.code; } catch (_) {}
    if (res.status === 401) askForKey(message);
    throw new ApiError(res.status, message, code);
  }
  return res;
}
const getJSON = async (path) => (await api(path)).json();

function showError(node, err) {
  node.textContent = err ? (err.message || String(err)) : '';
  node.hidden = !err;
}

// -- start -----------------------------------------------------------------------------------

async function start() {
  bindTabs();
  bindChat();
  bindKeyDialog();
  bindLearning();
  bindKnowledge();
  bindMonitor();
  bindRecommend();
  try {
    state.features = (await getJSON('/api/health')).features || {};
  } catch (err) { showError($('#chat-error'), err); }
  await whoAmI();
  showView(location.hash.slice(1) || 'chat');
}

async function whoAmI() {
  try {
    state.me = await getJSON('/api/me');
    $('#who').textContent = state.me.auth === 'local'
      ? `${state.me.user} · local mode` : `${state.me.user} · ${state.me.role}`;
    await loadSessions();
  } catch (err) {
    if (err.status !== 401) showError($('#chat-error'), err);
  }
}

function bindTabs() {
  for (const tab of document.querySelectorAll('.tabs button')) {
    tab.addEventListener('click', () => { location.hash = tab.dataset.view; });
  }
  window.addEventListener('hashchange', () => showView(location.hash.slice(1)));
  $('#toggle-sessions').addEventListener('click', () => {
    const open = $('#sessions').classList.toggle('open');
    $('#toggle-sessions').setAttribute('aria-expanded', String(open));
  });
}

function showView(name) {
  if (!['chat', 'learning', 'knowledge', 'monitor', 'recommend'].includes(name)) name = 'chat';
  for (const view of document.querySelectorAll('.view')) view.hidden = view.dataset.view !== name;
  for (const tab of document.querySelectorAll('.tabs button')) {
    tab.setAttribute('aria-selected', String(tab.dataset.view === name));
  }
  $('#toggle-sessions').hidden = name !== 'chat';
  clearTimeout(state.learningTimer);
  state.learningTimer = null;
  if (name === 'learning') loadLearning();
  if (name === 'knowledge') showKnowledge();
  if (name === 'monitor') loadMonitor();
  if (name === 'recommend') loadRecommend();
}

// -- API key -----------------------------------------------------------------------------------

function askForKey(message) {
  const dialog = $('#key-dialog');
  if (state.key) showError($('#key-error'), new Error(message));
  if (!dialog.open) dialog.showModal();
}

function bindKeyDialog() {
  $('#key-form').addEventListener('submit', async () => {
    state.key = $('#key-input').value.trim();
    localStorage.setItem('dialoop-key', state.key);
    showError($('#key-error'), null);
    await whoAmI();
  });
}

// -- chat ----------------------------------------------------------------------------------------

function bindChat() {
  const input = $('#input');
  $('#composer').addEventListener('submit', (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || state.controller) return;
    input.value = '';
    send(text);
  });
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $('#composer').requestSubmit();
    }
  });
  $('#stop').addEventListener('click', () => state.controller && state.controller.abort());
  $('#mic').addEventListener('click', toggleRecording);
  if (!navigator.mediaDevices || !window.MediaRecorder) {  // http on another host: no microphone
    $('#mic').disabled = true;
    $('#mic').title = 'Recording needs a microphone and this page on https or localhost.';
  }
  $('#image-input').addEventListener('change', async (event) => {
    for (const file of event.target.files) await attachImage(file);
    event.target.value = '';
  });
  input.addEventListener('paste', async (event) => {
    const files = [...event.clipboardData.files].filter((f) => f.type.startsWith('image/'));
    if (!files.length) return;
    event.preventDefault();
    for (const file of files) await attachImage(file);
  });
  $('#new-chat').addEventListener('click', () => {
    state.session = null;
    clearMessages();
    markCurrentSession();
    $('#sessions').classList.remove('open');
    input.focus();
  });
}

function clearMessages() {
  $('#messages').replaceChildren($('#chat-empty') || el('p', { className: 'empty' }));
  $('#chat-empty').hidden = false;
}

function addMessage(role, text, turn = null) {
  $('#chat-empty').hidden = true;
  const node = el('div', { className: `msg ${role}` }, el('div', { className: 'text' }, text));
  if (turn) node.dataset.turnId = turn.id;
  $('#messages').append(node);
  if (role === 'assistant' && turn) addActions(node, turn);
  node.scrollIntoView({ block: 'end' });
  return node;
}

function setBusy(busy) {
  $('#send').hidden = busy;
  $('#stop').hidden = !busy;
}

// -- speech and images ------------------------------------------------------------------------

// The microphone button: the first click records, the second stops. What was said goes to
// POST /api/chat as audio, so its turn keeps the audio's transcript, language and confidence;
// the transcript is shown as the message and the answer is spoken as well as written. While
// an answer is still coming, the recording is only transcribed (POST
// /v1/audio/transcriptions) and put in the input, to send when the answer is done.
async function toggleRecording() {
  const mic = $('#mic');
  if (state.recorder) { state.recorder.stop(); return; }
  showError($('#chat-error'), null);
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (err) {
    showError($('#chat-error'), new Error(`No microphone: ${err.message}`));
    return;
  }
  const recorder = new MediaRecorder(stream);
  const chunks = [];
  recorder.addEventListener('dataavailable', (event) => chunks.push(event.data));
  recorder.addEventListener('stop', async () => {
    for (const track of stream.getTracks()) track.stop();
    state.recorder = null;
    mic.setAttribute('aria-pressed', 'false');
    mic.textContent = 'Speak';
    const audio = new Blob(chunks, { type: recorder.mimeType || 'audio/webm' });
    mic.disabled = true;
    try {
      if (state.controller) await transcribeIntoInput(audio);
      else await sendSpoken(await dataUrl(audio));
    } catch (err) { showError($('#chat-error'), err); } finally { mic.disabled = false; }
  });
  recorder.start();
  state.recorder = recorder;
  mic.setAttribute('aria-pressed', 'true');
  mic.textContent = 'Stop recording';
}

async function transcribeIntoInput(audio) {
  const form = new FormData();
  form.append('file', audio, `speech.${audio.type.includes('ogg') ? 'ogg' : 'webm'}`);
  form.append('model', 'whisper-1');
  const heard = await (await api('/v1/audio/transcriptions', { method: 'POST', form })).json();
  const text = heard.text.trim();
  if (!text) throw new Error('Nothing was heard: speak after pressing the button.');
  $('#input').value = text;
}

// A spoken message (with the images attached, if any) as one turn of POST /api/chat; the
// answer comes whole, with its speech, which is played.
async function sendSpoken(audioUrl) {
  const images = state.images;
  state.images = [];
  showAttachments();
  const said = addMessage('user', '…');
  const bubble = addMessage('assistant', '');
  bubble.classList.add('streaming');
  state.controller = new AbortController();
  setBusy(true);
  try {
    const body = { audio: audioUrl };
    if (images.length) body.images = images;
    if (state.session) body.session = state.session;
    const reply = await (await api('/api/chat', { method: 'POST', json: body })).json();
    state.session = reply.session_id;
    $('.text', said).textContent = reply.user_text;
    $('.text', bubble).textContent = reply.answer;
    bubble.dataset.turnId = reply.turn_id;
    addActions(bubble, { id: reply.turn_id, content: reply.answer });
    if (reply.audio) {
      const player = el('audio', { controls: true,
                                   src: `data:audio/wav;base64,${reply.audio.data}` });
      bubble.append(player);
      player.play().catch(() => {});  // a browser may refuse to play: the controls stay
    }
  } catch (err) {
    said.remove();
    bubble.remove();
    throw err;
  } finally {
    state.controller = null;
    setBusy(false);
    bubble.classList.remove('streaming');
  }
  await loadSessions();
}

function dataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

async function attachImage(file) {
  if (!file.type.startsWith('image/')) return;
  const url = await dataUrl(file);
  state.images.push(url);
  showAttachments();
}

function showAttachments() {
  const box = $('#attachments');
  box.replaceChildren(...state.images.map((url, i) => {
    const remove = el('button', { type: 'button', className: 'icon-button',
                                  ariaLabel: `Remove image ${i + 1}` }, '✕');
    remove.addEventListener('click', () => { state.images.splice(i, 1); showAttachments(); });
    return el('span', { className: 'attachment' },
              el('img', { src: url, alt: `Image ${i + 1}` }), remove);
  }));
  box.hidden = !state.images.length;
}

// The play button: the answer spoken (POST /v1/audio/speech), played in an audio element.
async function playAnswer(bubble, button, note) {
  let audio = $('audio', bubble);
  if (!audio) {
    button.disabled = true;
    try {
      const res = await api('/v1/audio/speech', { method: 'POST', json: {
        model: 'tts-1', voice: 'alloy', response_format: 'wav',
        input: $('.text', bubble).textContent.slice(0, 4096) } });
      audio = el('audio', { controls: true, src: URL.createObjectURL(await res.blob()) });
      bubble.append(audio);
    } catch (err) { say(note, err.message, true); return; } finally { button.disabled = false; }
  }
  audio.play().catch(() => {});  // a browser may refuse to play without sound: the controls stay
}

// A message with images goes to the native API (POST /api/chat), which reads them for this
// turn alone; the answer comes whole (not streamed).
async function sendWithImages(text, images, bubble) {
  const out = $('.text', bubble);
  const body = { message: text, images };
  if (state.session) body.session = state.session;
  const reply = await (await api('/api/chat', { method: 'POST', json: body })).json();
  state.session = reply.session_id;
  out.textContent = reply.answer;
  return { turn_id: reply.turn_id };
}

// Stream one answer from the OpenAI-compatible endpoint; the server keeps the history.
async function send(text) {
  showError($('#chat-error'), null);
  const images = state.images;
  state.images = [];
  showAttachments();
  const marks = images.map((_, i) => ` [image ${i + 1}]`).join('');  // as the server stores it
  addMessage('user', text + marks);
  const bubble = addMessage('assistant', '');
  bubble.classList.add('streaming');
  const out = $('.text', bubble);
  const controller = new AbortController();
  state.controller = controller;
  setBusy(true);
  let info = null, stopped = false, failed = null;
  try {
    if (images.length) {
      info = await sendWithImages(text, images, bubble);
    } else {
      const headers = { Accept: 'text/event-stream' };
      if (state.session) headers['X-Dialoop-Session'] = state.session;
      const res = await api('/v1/chat/completions', {
        method: 'POST', headers, signal: controller.signal,
        json: { model: 'default', stream: true, stream_options: { include_usage: true },
                messages: [{ role: 'user', content: text }] },
      });
      state.session = res.headers.get('X-Dialoop-Session-Id') || state.session;
      for await (const event of sseEvents(res)) {
        if (event.error) throw new ApiError(500, event.error.message, event.error.code);
        const piece = event.choices && event.choices[0] && event.choices[0].delta.content;
        if (piece) { out.textContent += piece; bubble.scrollIntoView({ block: 'end' }); }
        if (event.dialoop) info = event.dialoop;
      }
    }
  } catch (err) {
    if (err.name === 'AbortError') stopped = true; else failed = err;
  } finally {
    state.controller = null;
    setBusy(false);
    bubble.classList.remove('streaming');
  }
  if (info) {
    bubble.dataset.turnId = info.turn_id;
    addActions(bubble, { id: info.turn_id, content: out.textContent });
  } else if (stopped) {
    bubble.append(el('div', { className: 'note' }, '(stopped)'));
  }
  if (failed) {
    if (!out.textContent) bubble.remove();
    showError($('#chat-error'), failed);
  }
  await loadSessions();
  if (stopped && state.session) setTimeout(() => openSession(state.session), 500);
}

// Server-sent events from a fetch response: yields each `data:` payload, parsed.
async function* sseEvents(res) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = block.split('\n').filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).trimStart()).join('\n');
      if (!data) continue;
      if (data === '[DONE]') return;
      yield JSON.parse(data);
    }
  }
}

// Thumbs, "correct this answer" and "why" under an answer.
function addActions(bubble, turn) {
  const feedback = Boolean(state.features.feedback);
  const off = 'Feedback needs the learning loop, which this server does not have yet.';
  const note = el('div', { className: 'note', hidden: true });
  const up = el('button', { className: 'up', type: 'button', title: feedback ? 'Good answer' : off,
                            disabled: !feedback, ariaLabel: 'Good answer' }, thumb(false));
  const down = el('button', { className: 'down', type: 'button',
                              title: feedback ? 'Bad answer' : off, disabled: !feedback,
                              ariaLabel: 'Bad answer' }, thumb(true));
  const correct = el('button', { className: 'correct', type: 'button', disabled: !feedback,
                                 title: feedback ? 'Give the answer it should have given' : off },
                     'Correct');
  const why = el('button', { className: 'why', type: 'button', title: 'What shaped this answer' },
                 'Why?');
  const play = el('button', { className: 'play', type: 'button', title: 'Hear this answer' },
                  'Play');
  play.addEventListener('click', () => playAnswer(bubble, play, note));
  const rate = async (value, button) => {
    try {
      await api(`/api/turns/${turn.id}/rating`, { method: 'POST', json: { value } });
      for (const b of [up, down]) b.setAttribute('aria-pressed', String(b === button));
      say(note, value > 0 ? 'Thanks: noted as a good answer.' : 'Noted as a bad answer. ' +
          'Correct it to teach the right one.');
    } catch (err) { say(note, err.message, true); }
  };
  up.addEventListener('click', () => rate(1, up));
  down.addEventListener('click', () => rate(-1, down));
  correct.addEventListener('click', () => openCorrection(bubble, turn, note));
  why.addEventListener('click', () => showWhy(turn.id));
  const actions = el('div', { className: 'actions' }, up, down, correct, why, play);
  if (!feedback) actions.append(el('span', { className: 'note' }, 'feedback unavailable'));
  bubble.append(actions, note);
}

// A thumb icon drawn inline (emoji fonts are not everywhere).
function thumb(down) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', 'thumb');
  if (down) svg.setAttribute('transform', 'rotate(180)');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', 'M2 10h4v11H2zM8 21h9.2a2 2 0 0 0 2-1.6l1.6-7A2 2 0 0 0 18.8 10H14l.9-4.6' +
                         'A1.7 1.7 0 0 0 13.2 3.5L8 10z');
  svg.append(path);
  return svg;
}

function say(note, text, bad = false) {
  note.textContent = text;
  note.classList.toggle('bad', bad);
  note.hidden = false;
}

function openCorrection(bubble, turn, note) {
  if ($('.correct-form', bubble)) return;
  const area = el('textarea', { rows: 3, ariaLabel: 'Corrected answer',
                                value: $('.text', bubble).textContent });
  const save = el('button', { className: 'primary', type: 'submit' }, 'Save correction');
  const cancel = el('button', { type: 'button' }, 'Cancel');
  const form = el('form', { className: 'correct-form' }, area, el('div', {}, save, cancel));
  cancel.addEventListener('click', () => form.remove());
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const answer = area.value.trim();
    if (!answer) return;
    save.disabled = true;
    try {
      await api(`/api/turns/${turn.id}/correction`, { method: 'POST', json: { answer } });
      form.remove();
      say(note, 'Correction saved: the next answer to this question will use it.');
    } catch (err) { save.disabled = false; say(note, err.message, true); }
  });
  bubble.append(form);
  area.focus();
}

// -- sessions ---------------------------------------------------------------------------------------

async function loadSessions() {
  let sessions;
  try { sessions = await getJSON('/api/sessions'); } catch (err) { return; }
  const list = $('#session-list');
  list.replaceChildren(...sessions.map((s) => {
    const open = el('button', { className: 'open', type: 'button', title: s.title || s.label },
                    s.title || s.label);
    open.addEventListener('click', () => { openSession(s.id); $('#sessions').classList.remove('open'); });
    const del = el('button', { className: 'delete', type: 'button', ariaLabel: 'Delete session',
                               title: 'Delete this session' }, '✕');
    del.addEventListener('click', () => deleteSession(s));
    return el('li', { dataset: { id: s.id } }, open, del);
  }));
  markCurrentSession();
}

function markCurrentSession() {
  for (const li of document.querySelectorAll('#session-list li')) {
    li.classList.toggle('current', li.dataset.id === state.session);
  }
}

async function openSession(id) {
  try {
    const session = await getJSON(`/api/sessions/${encodeURIComponent(id)}`);
    state.session = session.id;
    clearMessages();
    for (const turn of session.turns) {
      const node = addMessage(turn.role, turn.content, turn);
      if (turn.status === 'cancelled') node.append(el('div', { className: 'note' }, '(stopped)'));
    }
    markCurrentSession();
  } catch (err) { showError($('#chat-error'), err); }
}

async function deleteSession(s) {
  if (!confirm(`Delete the session "${s.title || s.label}" and all its turns?`)) return;
  try {
    await api(`/api/sessions/${encodeURIComponent(s.id)}`, { method: 'DELETE' });
    if (state.session === s.id) { state.session = null; clearMessages(); }
    await loadSessions();
  } catch (err) { showError($('#chat-error'), err); }
}

// -- why: a turn's trace ----------------------------------------------------------------------------

async function showWhy(turnId) {
  const body = $('#why-body');
  body.replaceChildren(el('p', {}, 'Loading…'));
  $('#why-dialog').showModal();
  try {
    const turn = await getJSON(`/api/turns/${turnId}`);
    body.replaceChildren(...renderTrace(turn));
  } catch (err) { body.replaceChildren(el('p', { className: 'error' }, err.message)); }
}

function renderTrace(turn) {
  const trace = turn.trace || {};
  const context = trace.context || {};
  const facts = [
    ['Model', turn.model], ['Adapter', turn.adapter || 'none (base model)'],
    ['Finish', trace.finish_reason || turn.status],
    ['Tokens', `${turn.prompt_tokens ?? '?'} prompt (${turn.cached_tokens ?? 0} reused) + ` +
               `${turn.completion_tokens ?? '?'} answer`],
    ['Time', turn.seconds != null ? `${turn.seconds.toFixed(2)} s` : null],
    ['Older messages left out', context.dropped_messages],
    ['Cut to fit', (context.truncated || []).join(', ') || null],
  ].filter(([, v]) => v !== null && v !== undefined && v !== '');
  const parts = [el('dl', { className: 'facts' },
    ...facts.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, String(v))]))];
  const evidence = context.evidence || [];
  parts.push(el('h2', {}, 'Evidence used'));
  parts.push(evidence.length
    ? el('ol', {}, ...evidence.map((e) => el('li', {}, `${e.text} `,
        el('small', {}, `(${e.kind}, ${e.source}, score ${e.score})`))))
    : el('p', {}, 'None: the answer comes from the model alone.'));
  if (trace.dialogue) {
    parts.push(el('h2', {}, 'Understanding and decision'));
    parts.push(el('pre', {}, JSON.stringify(trace.dialogue, null, 2)));
  }
  parts.push(el('details', {}, el('summary', {}, 'Full trace'),
                el('pre', {}, JSON.stringify(trace, null, 2))));
  return parts;
}

// -- learning ---------------------------------------------------------------------------------------

function bindLearning() {
  $('#learning-run').addEventListener('click', async () => {
    try {
      await api('/api/learning/run', { method: 'POST' });
      await loadLearning();
    } catch (err) { showError($('#learning-error'), err); }
  });
  $('#teach').addEventListener('submit', async (event) => {
    event.preventDefault();
    const form = event.target;
    try {
      await api('/api/lessons', { method: 'POST', json: {
        question: form.question.value.trim(), answer: form.answer.value.trim() } });
      form.reset();
      await loadLearning();
    } catch (err) { showError($('#learning-error'), err); }
  });
}

// The learning page refreshes itself while it is shown: a run queued by the server (after
// enough lessons or ratings, or when idle) shows its progress, then the adapter it promoted.
const REFRESH_MS = { active: 2000, quiet: 5000 };

async function loadLearning() {
  const on = Boolean(state.features.learning);
  $('#learning-unavailable').hidden = on;
  $('#learning-body').hidden = !on;
  if (!on) return;
  clearTimeout(state.learningTimer);
  let active = false;
  try {
    const [status, history, lessons] = await Promise.all([
      getJSON('/api/learning/status'), getJSON('/api/learning/history'),
      getJSON('/api/lessons')]);
    showError($('#learning-error'), null);
    renderStatus(status);
    renderAdapters(history);
    renderChart(history);
    renderLessons(lessons);
    active = Boolean(status.last_run && ['queued', 'running'].includes(status.last_run.status));
  } catch (err) { showError($('#learning-error'), err); }
  if (!$('#view-learning').hidden) {
    state.learningTimer = setTimeout(refreshLearning, active ? REFRESH_MS.active : REFRESH_MS.quiet);
  }
}

function refreshLearning() {
  if ($('#view-learning').hidden) return;
  if (document.hidden) {  // a background tab asks nothing; it looks again when shown
    state.learningTimer = setTimeout(refreshLearning, REFRESH_MS.quiet);
    return;
  }
  loadLearning();
}

function renderStatus(status) {
  const lessons = status.lessons || {};
  const since = status.since_last_run;
  const rows = [
    ['adapter', 'Serving adapter', status.adapter || 'none (base model)'],
    ['active', 'Lessons active', lessons.active], ['pending', 'Lessons pending', lessons.pending],
    ['waiting', 'New since the last run',
     since ? `${since.lessons} lessons, ${since.ratings} ratings` : null],
    ['auto', 'Consolidates by itself', status.auto ? describeAuto(status.auto) : null],
    ['satisfaction', 'Satisfaction', pct(status.satisfaction)],
    ['run', 'Last consolidation', status.last_run ? describeRun(status.last_run) : 'none yet'],
  ].filter(([, , v]) => v !== undefined && v !== null);
  $('#learning-status').replaceChildren(...rows.flatMap(([key, k, v]) => [
    el('dt', {}, k), el('dd', { dataset: { key } }, String(v))]));
}

function describeAuto(auto) {
  if (!auto.on) return 'no (only when asked)';
  const when = [];
  if (auto.after) when.push(`after ${auto.after} new lessons or ratings`);
  if (auto.idle_seconds) when.push(`after ${Math.round(auto.idle_seconds)} s idle`);
  return when.length ? when.join(', or ') : 'never (both triggers are 0)';
}

// "#3 running: user:ann: training step 4/20 (42%)" · "#3 done: user:ann@v2 promoted" · …
function describeRun(run) {
  const head = `#${run.id} ${run.status}${run.trigger ? ` (${run.trigger})` : ''}`;
  if (run.status === 'queued') return `${head}: waiting for the worker`;
  if (run.status === 'running') {
    return `${head}: ${run.stage || 'starting'} (${Math.round((run.progress || 0) * 100)}%)`;
  }
  if (run.error) return `${head}: ${run.error}`;
  const lines = Object.entries((run.report || {}).lines || {});
  return lines.length ? `${head}: ${lines.map(([name, r]) => describeLine(name, r)).join('; ')}`
    : head;
}

function describeLine(name, result) {
  const outcome = result.outcome || '?';
  const version = result.version ? `${name}@v${result.version}` : name;
  if (outcome !== 'rejected') return `${version} ${outcome}${result.note ? ` (${result.note})` : ''}`;
  const gate = result.gate || {};
  const metrics = gate.metrics || {}, bars = gate.thresholds || {};
  const why = (gate.failed || []).map((m) => {
    const bar = bars[m] ?? bars.reliability;
    return `${m} ${pct(metrics[m])}${bar != null ? ` < ${pct(bar)}` : ''}`;
  });
  return `${version} rejected by the gate${why.length ? `: ${why.join(', ')}` : ''}`;
}

const METRICS = [
  ['reliability', 'Reliability', '#2f6fde'], ['generalization', 'Generalization', '#8e44ad'],
  ['locality', 'Locality', '#1e8e3e'], ['satisfaction', 'Satisfaction', '#e67e22'],
];

// A gate metric of an adapter version, wherever the report keeps it.
function metric(version, name) {
  const report = version.report || {};
  const gate = version.gate || report.gate || {};
  for (const v of [version[name], (gate.metrics || {})[name], (report.metrics || {})[name],
                   report[name]]) {
    if (typeof v === 'number') return v;
  }
  return null;
}

const pct = (v) => (typeof v === 'number' ? `${Math.round(v * 100)}%` : null);

function renderAdapters(history) {
  const admin = state.me && state.me.role === 'admin';
  $('#adapter-table tbody').replaceChildren(...history.map((v) => {
    const back = el('button', { type: 'button', disabled: !admin || v.status !== 'promoted',
                                title: admin ? 'Serve this version again' : 'Admins only' },
                    'Roll back to');
    back.addEventListener('click', async () => {
      try {
        await api('/api/learning/rollback', { method: 'POST',
                                              json: { line: v.line, version: v.version } });
        await loadLearning();
      } catch (err) { showError($('#learning-error'), err); }
    });
    return el('tr', {}, el('td', {}, v.key || `${v.line}@v${v.version}`),
      el('td', {}, v.serving ? `${v.status}, serving` : v.status),
      el('td', {}, (v.created_at || '').slice(0, 16).replace('T', ' ')),
      ...METRICS.map(([key]) => el('td', {}, pct(metric(v, key)) ?? '–')), el('td', {}, back));
  }));
}

// Gate metrics and satisfaction over versions.
function renderChart(history) {
  const holder = $('#learning-chart');
  // One adapter line per chart: the global one if there is one.
  const line = history.some((v) => v.line === 'global') ? 'global' : (history[0] || {}).line;
  const versions = history.filter((v) => v.line === line
                                        && METRICS.some(([k]) => metric(v, k) !== null));
  if (!versions.length) {
    holder.replaceChildren(el('p', { className: 'note' }, 'No gate reports yet.'));
    return;
  }
  lineChart(holder, {
    labels: versions.map((v) => `${line}@v${v.version}`),
    max: 1,
    format: (v) => `${v * 100}%`,
    tip: (v) => pct(v),
    series: METRICS.map(([key, label, color]) => ({
      label, color, values: versions.map((v) => metric(v, key)) })),
  });
}

// A small inline SVG line chart: one line per series over the labels (null: no point),
// from 0 to max, with five grid lines and a legend.
function lineChart(holder, { labels, series, max, format, tip = format }) {
  const W = 640, H = 220, L = 40, R = 36, T = 10, B = 28;
  const x = (i) => L + (labels.length === 1 ? (W - L - R) / 2 : i * (W - L - R) / (labels.length - 1));
  const y = (v) => T + (1 - v / max) * (H - T - B);
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const add = (tag, attrs, text) => {
    const n = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text != null) n.textContent = text;
    svg.append(n);
    return n;
  };
  for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
    add('line', { x1: L, x2: W - R, y1: y(tick * max), y2: y(tick * max), class: 'axis' });
    add('text', { x: 4, y: y(tick * max) + 4 }, format(tick * max));
  }
  const every = Math.max(1, Math.ceil(labels.length / 8));  // at most eight labels
  labels.forEach((label, i) => {
    if (i % every === 0) add('text', { x: x(i), y: H - 8, 'text-anchor': 'middle' }, label);
  });
  for (const { label, color, values } of series) {
    const points = values.map((v, i) => [i, v]).filter(([, v]) => v !== null);
    if (!points.length) continue;
    add('polyline', { points: points.map(([i, v]) => `${x(i)},${y(v)}`).join(' '), fill: 'none',
                      stroke: color, 'stroke-width': 2, 'data-series': label });
    for (const [i, v] of points) {
      add('circle', { cx: x(i), cy: y(v), r: 3, fill: color }).append(
        Object.assign(document.createElementNS(ns, 'title'),
                      { textContent: `${label} ${labels[i]}: ${tip(v)}` }));
    }
  }
  const legend = el('div', { className: 'legend' },
    ...series.map(({ label, color }) => el('span', { style: `color:${color}` }, label)));
  holder.replaceChildren(svg, legend);
}

function renderLessons(lessons) {
  const admin = state.me && state.me.role === 'admin';
  $('#lesson-table tbody').replaceChildren(...lessons.map((l) => {
    const promote = el('button', { type: 'button', disabled: !admin || l.scope === 'global',
                                   title: admin ? 'Apply to everyone' : 'Admins only' },
                       'Make global');
    promote.addEventListener('click', () => lessonAction(`/api/lessons/${l.id}/promote`, 'POST'));
    const forget = el('button', { type: 'button', title: 'Remove this lesson' }, 'Forget');
    forget.addEventListener('click', () => lessonAction(`/api/lessons/${l.id}`, 'DELETE'));
    return el('tr', {}, el('td', {}, l.question), el('td', {}, l.answer), el('td', {}, l.scope),
      el('td', {}, (l.created_at || '').slice(0, 16).replace('T', ' ')),
      el('td', {}, promote, ' ', forget));
  }));
}

async function lessonAction(path, method) {
  try { await api(path, { method }); await loadLearning(); }
  catch (err) { showError($('#learning-error'), err); }
}

// -- knowledge ----------------------------------------------------------------------------------------

function showKnowledge() {
  const on = Boolean(state.features.knowledge);
  $('#knowledge-unavailable').hidden = on;
  $('#knowledge-body').hidden = !on;
}

function bindKnowledge() {
  $('#entity-search').addEventListener('submit', async (event) => {
    event.preventDefault();
    showError($('#knowledge-error'), null);
    const q = event.target.q.value.trim();
    try {
      const entities = await getJSON(`/api/knowledge/entities?search=${encodeURIComponent(q)}`);
      $('#entity-list').replaceChildren(...(entities.length ? entities.map((e) => {
        const b = el('button', { type: 'button' }, e.type ? `${e.name} (${e.type})` : e.name);
        b.addEventListener('click', () => showEntity(e.name));
        return el('li', {}, b);
      }) : [el('li', { className: 'note' }, 'No entity matches.')]));
    } catch (err) { showError($('#knowledge-error'), err); }
  });
}

async function showEntity(name) {
  try {
    const entity = await getJSON(`/api/knowledge/entities/${encodeURIComponent(name)}`);
    $('#entity-name').textContent = entity.name;
    $('#triple-table').hidden = false;
    $('#triple-table tbody').replaceChildren(...(entity.triples || []).map((t) => el('tr', {},
      el('td', {}, t.subject), el('td', {}, t.relation), el('td', {}, String(t.object)),
      el('td', {}, t.source || ''))));
  } catch (err) { showError($('#knowledge-error'), err); }
}

// After every script of the page has loaded (insights.js adds the Monitor and For-you pages).
document.addEventListener('DOMContentLoaded', start);
