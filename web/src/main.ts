/**
 * The page: pick or upload a video, encode it once (with progress), or watch a live source (a server live
 * session: its newest frame and a strip of the frames seen), then ask any number of questions about it; each
 * answer streams in and its relevance per frame becomes the timeline under the player.
 */
import * as api from './api.js';
import { clock, type Moment, Timeline } from './timeline.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const player = $<HTMLVideoElement>('player');
const thumbs = $<HTMLVideoElement>('thumb-source');
const timeline = new Timeline($<HTMLCanvasElement>('timeline'), $('peaks'), (sec) => {
  player.currentTime = sec;
});

interface Answer {
  turn: api.Turn;
  element: HTMLElement;
  relevance: api.Relevance | null;
}

/** A live session being watched: its status as last polled and the frames drawn so far (for thumbnails). */
interface Live {
  id: string;
  status: api.LiveStatus;
  shots: { at: number; canvas: HTMLCanvasElement }[];
  timer: ReturnType<typeof setInterval>;
}

const state = {
  info: null as api.Info | null,
  /**
   * The video being discussed (a path under the media root, an upload:<id> URL or live://<id>), its name and
   * its sampled frames' times.
   */
  video: null as { url: string; name: string; timestamps: number[] } | null,
  live: null as Live | null,
  turns: [] as api.Turn[],
  answers: [] as Answer[],
  busy: false,
};

const MiB = 2 ** 20;
const size = (bytes: number) =>
  bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(2)} GiB` : `${(bytes / MiB).toFixed(1)} MiB`;

function showError(e: unknown): void {
  const box = $('error');
  box.hidden = e === null;
  box.textContent = e === null ? '' : e instanceof Error ? e.message : String(e);
  if (e instanceof api.ServerError && e.status === 401) {
    const key = prompt('This server needs an API key:');
    if (key) {
      api.setKey(key);
      void start();
    }
  }
}

async function refreshInfo(): Promise<void> {
  const info = await api.info();
  state.info = info;
  $('model').textContent = `${info.model} · ${info.architecture} · ${info.device}`;
  const m = info.memory;
  $('memory').textContent =
    `weights ${size(m.weights_bytes)} · ${info.device} in use ${size(m.device_bytes)} (peak ${size(m.device_peak_bytes)})` +
    ` · video cache ${size(m.video_cache_bytes)} in ${m.video_cache_entries}`;
}

async function start(): Promise<void> {
  try {
    await refreshInfo();
    const select = $<HTMLSelectElement>('library');
    if (state.info?.library) {
      const { data } = await api.videos();
      select.replaceChildren(...data.map((v) => new Option(`${v.path} (${size(v.bytes)})`, v.path)));
      if (!data.length) select.append(new Option('no videos under the media root', ''));
    } else select.replaceChildren(new Option('no media root on this server', ''));
    $('live').hidden = !state.info?.live;
    showError(null);
  } catch (e) {
    showError(e);
  }
}

function setBusy(busy: boolean): void {
  state.busy = busy;
  for (const id of ['open', 'send', 'watch'])
    $<HTMLButtonElement>(id).disabled = busy || (id === 'send' && !state.video);
  $<HTMLInputElement>('question').disabled = busy || !state.video;
}

/** Forgets the conversation and the video (closing a live session being watched). */
function reset(): void {
  showError(null);
  state.video = null;
  state.turns = [];
  state.answers = [];
  $('history').replaceChildren();
  timeline.show(null, 0);
  $('moments').replaceChildren();
  $('timeline-for').textContent = '';
  const live = state.live;
  state.live = null;
  if (live) {
    clearInterval(live.timer);
    void api.closeLive(live.id).catch(() => {});
  }
  player.hidden = false;
  $('live-view').hidden = true;
  $('live-frames').hidden = true;
  $('live-frames').replaceChildren();
}

/** Loads the player and encodes the video (or finds it in the server's cache), showing progress. */
async function openVideo(url: string, name: string): Promise<void> {
  if (!url || state.busy) return;
  setBusy(true);
  reset();
  player.src = api.mediaUrl(url);
  thumbs.src = player.src;
  $('empty').hidden = true;
  const bar = $('progress');
  const fill = $('progress-fill');
  const text = $('progress-text');
  bar.hidden = false;
  fill.style.width = '0%';
  text.textContent = `Reading ${name}…`;
  const memory = setInterval(() => void refreshInfo().catch(() => {}), 1000);
  try {
    const encoded = await api.encode(url, (p) => {
      fill.style.width = `${p.total ? (100 * p.done) / p.total : 0}%`;
      const eta = p.eta_s != null && p.done < p.total ? ` · about ${Math.ceil(p.eta_s)} s left` : '';
      const tokens = p.tokens != null ? ` · ${p.tokens.toLocaleString()} tokens` : '';
      text.textContent = `Decoding and encoding frames: ${p.done} / ${p.total}${tokens}${eta}`;
    });
    fill.style.width = '100%';
    text.textContent = encoded.cached
      ? `Already encoded: ${encoded.tokens.toLocaleString()} video tokens, ready for questions.`
      : `Encoded ${encoded.frames} frames into ${encoded.tokens.toLocaleString()} video tokens in ${encoded.seconds.toFixed(1)} s.`;
    $('video-info').textContent =
      `${name} · ${encoded.frames} frames sampled · ${encoded.tokens.toLocaleString()} tokens · ${size(encoded.bytes)} of model state`;
    state.video = { url, name, timestamps: encoded.timestamps_sec };
    timeline.show(null, duration());
  } catch (e) {
    text.textContent = 'Encoding failed.';
    showError(e);
  } finally {
    clearInterval(memory);
    await refreshInfo().catch(() => {});
    setBusy(false);
  }
}

/** The video's length: a live session's seconds seen, the player's, else the span of the sampled frames. */
function duration(): number {
  if (state.live) return state.live.status.duration_sec + 1 / state.live.status.fps;
  if (Number.isFinite(player.duration) && player.duration > 0) return player.duration;
  const t = state.video?.timestamps ?? [];
  return t.length ? t[t.length - 1] + (t.length > 1 ? t[1] - t[0] : 1) : 0;
}

const rgbImage = (f: api.RgbFrame) => {
  const rgba = new Uint8ClampedArray(f.width * f.height * 4);
  for (let i = 0, j = 0; i < f.rgb.length; i += 3, j += 4) {
    rgba[j] = f.rgb[i];
    rgba[j + 1] = f.rgb[i + 1];
    rgba[j + 2] = f.rgb[i + 2];
    rgba[j + 3] = 255;
  }
  return new ImageData(rgba, f.width, f.height);
};

/** Starts a live session on `source` and watches it: status, newest frame and a strip of frames seen. */
async function openLive(source: string, fps: number): Promise<void> {
  if (!source || state.busy) return;
  setBusy(true);
  reset();
  player.removeAttribute('src');
  player.load();
  player.hidden = true;
  $('empty').hidden = true;
  $('live-view').hidden = false;
  $('live-frames').hidden = false;
  $('progress').hidden = false;
  $('progress-fill').style.width = '0%';
  $('progress-text').textContent = `Connecting to ${source}…`;
  try {
    const status = await api.watch(source, fps);
    const live: Live = { id: status.id, status, shots: [], timer: setInterval(() => void poll(live), 1000) };
    state.live = live;
    state.video = { url: `live://${status.id}`, name: source, timestamps: [] };
    timeline.show(null, duration());
    await poll(live);
  } catch (e) {
    $('progress-text').textContent = 'Could not watch this source.';
    showError(e);
  } finally {
    setBusy(false);
  }
}

/** Frames kept in the strip (the server keeps the last few hundred too). */
const STRIP = 300;

const canvasOf = (f: api.RgbFrame, into = document.createElement('canvas')) => {
  into.width = f.width;
  into.height = f.height;
  into.getContext('2d')?.putImageData(rgbImage(f), 0, 0);
  return into;
};

/** One look at a live session: its counts, its newest frame, the frames taken since the last look, memory. */
async function poll(live: Live): Promise<void> {
  try {
    const s = await api.liveStatus(live.id);
    if (state.live !== live) return;
    live.status = s;
    const newest = await api.liveFrame(live.id);
    const last = live.shots[live.shots.length - 1]?.at ?? null;
    const thumbs = await api.liveThumbs(live.id, last);
    if (state.live !== live) return;
    if (newest) canvasOf(newest, $<HTMLCanvasElement>('live-view'));
    const strip = $('live-frames');
    for (const f of thumbs) {
      // A look that overlapped a slower one may bring frames the strip has already.
      if (f.timeSec <= (live.shots[live.shots.length - 1]?.at ?? Number.NEGATIVE_INFINITY)) continue;
      const shot = canvasOf(f);
      live.shots.push({ at: f.timeSec, canvas: shot });
      const figure = document.createElement('figure');
      const caption = document.createElement('figcaption');
      caption.textContent = clock(f.timeSec);
      figure.append(shot, caption);
      strip.append(figure);
    }
    live.shots.splice(0, Math.max(0, live.shots.length - STRIP));
    while (strip.children.length > STRIP) strip.firstElementChild?.remove();
    if (thumbs.length) strip.scrollLeft = strip.scrollWidth;
    const ended = s.state === 'ended' || s.state === 'failed';
    $('progress-fill').style.width = ended ? '100%' : `${100 * ((s.frames_seen % 10) / 10)}%`;
    $('progress-text').textContent =
      `Live (${s.state}): ${s.frames_seen} frames seen, ${s.frames_encoded} encoded · ${s.duration_sec.toFixed(1)} s` +
      ` · ${s.video_tokens.toLocaleString()} video tokens · ${size(s.memory_bytes)} of model state`;
    $('video-info').textContent =
      `${state.video?.name} · live session ${s.id}${s.error ? ` · ${s.error}` : ''}`;
    if (ended) clearInterval(live.timer);
    await refreshInfo();
  } catch (e) {
    clearInterval(live.timer);
    showError(e);
  }
}

function addMessage(turn: api.Turn): HTMLElement {
  const li = document.createElement('li');
  li.className = `msg ${turn.role}`;
  const text = document.createElement('span');
  text.className = 'text';
  text.textContent = turn.content;
  li.append(text);
  $('history').append(li);
  li.scrollIntoView({ block: 'end' });
  return li;
}

async function askQuestion(question: string): Promise<void> {
  const video = state.video;
  if (!video || !question.trim() || state.busy) return;
  setBusy(true);
  showError(null);
  state.turns.push({ role: 'user', content: question });
  const asked = addMessage({ role: 'user', content: question });
  const turn: api.Turn = { role: 'assistant', content: '' };
  const element = addMessage(turn);
  element.classList.add('streaming');
  const text = element.querySelector('.text') as HTMLElement;
  try {
    const relevance = await api.ask(state.info?.model ?? '', video.url, state.turns, (piece) => {
      turn.content += piece;
      text.textContent = turn.content;
    });
    state.turns.push(turn);
    const answer: Answer = { turn, element, relevance };
    state.answers.push(answer);
    element.addEventListener('click', () => select(answer));
    select(answer);
  } catch (e) {
    // The question did not get an answer: it leaves the conversation (the next one is asked without it).
    state.turns.pop();
    asked.remove();
    element.remove();
    showError(e);
  } finally {
    element.classList.remove('streaming');
    setBusy(false);
    await refreshInfo().catch(() => {});
  }
}

/** Shows an answer's relevance on the timeline, its top moments as thumbnails. */
function select(answer: Answer): void {
  for (const a of state.answers) a.element.classList.toggle('selected', a === answer);
  const top = timeline.show(answer.relevance, duration());
  $('timeline-for').textContent = `for “${answer.turn.content.slice(0, 48)}”`;
  const meta = answer.element.querySelector('.meta') ?? document.createElement('span');
  meta.className = 'meta';
  meta.textContent = top.length ? `looked most at ${clock(top[0].at)}` : 'no relevance returned';
  answer.element.append(meta);
  void showMoments(top);
}

let momentsRun = 0;

async function showMoments(top: Moment[]): Promise<void> {
  const run = ++momentsRun;
  const box = $('moments');
  box.replaceChildren();
  for (const [rank, m] of top.entries()) {
    const card = document.createElement('button');
    card.className = 'moment';
    const canvas = document.createElement('canvas');
    canvas.width = 320;
    canvas.height = 180;
    const label = document.createElement('div');
    label.innerHTML = `<span>#${rank + 1} · ${clock(m.at)}</span><b>${(100 * m.score).toFixed(1)}%</b>`;
    card.append(canvas, label);
    card.addEventListener('click', () => {
      player.currentTime = m.at;
    });
    box.append(card);
    await drawFrame(canvas, m.at);
    if (run !== momentsRun) return;
    card.dataset.ready = '';
  }
}

/** Draws the frame at `sec` (from the hidden second player, or a live session's nearest frame seen), letterboxed. */
async function drawFrame(canvas: HTMLCanvasElement, sec: number): Promise<void> {
  const g = canvas.getContext('2d');
  if (state.live) {
    const shots = state.live.shots;
    const near = shots.reduce<Live['shots'][number] | null>(
      (best, s) => (!best || Math.abs(s.at - sec) < Math.abs(best.at - sec) ? s : best),
      null,
    );
    if (g && near) letterbox(g, canvas, near.canvas, near.canvas.width, near.canvas.height);
    return;
  }
  if (thumbs.readyState < 1)
    await new Promise((r) => thumbs.addEventListener('loadedmetadata', r, { once: true }));
  thumbs.currentTime = Math.min(sec + 0.01, Math.max(0, thumbs.duration - 0.01));
  await new Promise((r) => thumbs.addEventListener('seeked', r, { once: true }));
  if (!g || !thumbs.videoWidth) return;
  letterbox(g, canvas, thumbs, thumbs.videoWidth, thumbs.videoHeight);
}

function letterbox(
  g: CanvasRenderingContext2D,
  canvas: HTMLCanvasElement,
  source: CanvasImageSource,
  width: number,
  height: number,
): void {
  const scale = Math.min(canvas.width / width, canvas.height / height);
  const w = width * scale;
  const h = height * scale;
  g.fillStyle = '#000';
  g.fillRect(0, 0, canvas.width, canvas.height);
  g.drawImage(source, (canvas.width - w) / 2, (canvas.height - h) / 2, w, h);
}

player.addEventListener('timeupdate', () => timeline.setTime(player.currentTime));
player.addEventListener('seeked', () => timeline.setTime(player.currentTime));
player.addEventListener('loadedmetadata', () => {
  const selected = state.answers.find((a) => a.element.classList.contains('selected'));
  if (selected) select(selected);
  else timeline.show(null, duration());
});
$('open').addEventListener('click', () => {
  const path = $<HTMLSelectElement>('library').value;
  void openVideo(path, path);
});
$<HTMLInputElement>('file').addEventListener('change', async (e) => {
  const input = e.target as HTMLInputElement;
  const file = input.files?.[0];
  input.value = '';
  if (!file || state.busy) return;
  const limit = state.info?.upload_max_bytes ?? Number.POSITIVE_INFINITY;
  if (file.size > limit) {
    showError(
      new Error(`${file.name} is ${size(file.size)}; this server accepts uploads up to ${size(limit)}`),
    );
    return;
  }
  const progress = $('progress-text');
  $('progress').hidden = false;
  progress.textContent = `Uploading ${file.name} (${size(file.size)})…`;
  try {
    const up = await api.upload(file);
    await openVideo(up.url, up.name);
  } catch (err) {
    progress.textContent = 'Upload failed.';
    showError(err);
  }
});
$<HTMLFormElement>('live').addEventListener('submit', (e) => {
  e.preventDefault();
  const fps = Number($<HTMLInputElement>('live-fps').value) || 1;
  void openLive($<HTMLInputElement>('live-source').value.trim(), fps);
});
$<HTMLFormElement>('ask').addEventListener('submit', (e) => {
  e.preventDefault();
  const q = $<HTMLInputElement>('question');
  const question = q.value;
  q.value = '';
  void askQuestion(question);
});

void start();
