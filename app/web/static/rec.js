// rec-web: live panels and charts. One EventSource (/api/events, fed by PostgreSQL NOTIFY);
// a notification re-fetches the panels and charts that listen to its channel. Nothing here
// asks the server on a timer: the only timer re-computes the "data age" texts and the
// "DATA STALE" banner locally, from rec-web's heartbeat and the stream's own silence.
(() => {
  'use strict';
  const rec = window.__rec = { events: [], updates: [], online: false, hellos: 0,
    db: false, lastEvent: 0, beat: null, beatAt: 0, stale: [], started: Date.now() };
  const live = document.getElementById('live');
  const banner = document.getElementById('stale');
  const targets = [...document.querySelectorAll('[data-panel],[data-chart]')];
  const channels = new Set(['hello', 'resync', 'offline', 'heartbeat']);
  targets.forEach(t => (t.dataset.channels || '').split(/\s+/).filter(Boolean)
    .forEach(c => channels.add(c)));
  const charts = new Map();

  // the pill says "live" only while the database listener is up AND the stream is heard
  function setLive(on, why) {
    rec.db = on;
    rec.why = why;
    pill();
  }
  function pill() {
    const quiet = rec.stale.find(x => x.key === 'stream');
    const on = rec.db && !quiet;
    rec.online = on;
    if (!live) return;
    const why = quiet ? 'no word from rec-web for ' + Math.round(quiet.age) + ' s' : rec.why;
    const text = on ? 'live' : 'offline' + (why ? ': ' + why : '');
    if (live.textContent !== text) live.textContent = text;
    live.className = 'live ' + (on ? 'on' : 'off');
  }

  // the kill switch and auto-entry: a banner on every page while either is on
  function switches(t) {
    const kill = document.getElementById('kill-on');
    const auto = document.getElementById('auto-on');
    if (kill) kill.hidden = !(t && t.kill_switch);
    if (auto) {
      auto.hidden = !(t && t.auto_entry_enabled);
      auto.querySelector('.dry').hidden = !(t && t.auto_entry_dry_run);
    }
  }

  // honest freshness: what the last heartbeat said, aged by the time since it came, and
  // the stream's own silence (a frozen rec-web sends nothing, and says nothing either)
  function staleness() {
    const now = Date.now();
    const b = rec.beat;
    const lim = (b && b.limits) || { stream: { after: 6, label: 'rec-web live stream',
      why: 'nothing on this page is updating' } };
    const out = [];
    const heard = rec.lastEvent || rec.started;
    const quiet = (now - heard) / 1000;
    if (rec.source && quiet > lim.stream.after) {
      out.push({ key: 'stream', what: lim.stream.label, age: quiet, why: lim.stream.why });
    }
    if (b && b.error) out.push({ key: 'heartbeat', what: 'data ages', text: b.error });
    else if (b) {
      const since = (now - rec.beatAt) / 1000;
      const add = (key, what, age, l) => {
        if (age === null || age === undefined) out.push({ key, what, never: true, why: l.why });
        else if (age + since > l.after) out.push({ key, what, age: age + since, why: l.why });
      };
      add('market_feed', lim.market_feed.label, b.market_feed, lim.market_feed);
      Object.entries(b.index || {}).forEach(([name, age]) =>
        add('index:' + name, lim.index.label + ' ' + name, age, lim.index));
    }
    rec.stale = out;
    pill();
    if (!banner) return;
    const words = x => x.what + ' ' + (x.text || (x.never ? 'never reported' :
      Math.round(x.age) + ' s'));
    const whys = [...new Set(out.map(x => x.why).filter(Boolean))];
    const text = out.length ? 'DATA STALE: ' + out.map(words).join(', ') +
      (whys.length ? ' — ' + whys.join('; ') : '') : '';
    if (banner.textContent !== text) banner.textContent = text;
    banner.hidden = !out.length;
  }

  function toLogin() {
    location.href = '/login?next=' + encodeURIComponent(location.pathname + location.search);
  }

  function fmtAge(s) {
    if (s < 120) return Math.round(s) + 's';
    if (s < 7200) return Math.round(s / 60) + 'm';
    if (s < 172800) return (s / 3600).toFixed(1) + 'h';
    return (s / 86400).toFixed(1) + 'd';
  }

  // a market's row is stale when its own last message is too old, or when the banner calls
  // the whole market feed stale (the same judgement as panels.markets on the server, whose
  // word stands until the first heartbeat)
  function ages() {
    const now = Date.now() / 1000;
    const feedQuiet = rec.beat ? rec.stale.some(x => x.key === 'market_feed' && !x.never)
      : !!document.querySelector('table[data-feed-stale="true"]');
    document.querySelectorAll('.age[data-ts]').forEach(a => {
      const t = parseFloat(a.dataset.ts);
      if (!t) return;
      const s = Math.max(0, now - t);
      a.textContent = fmtAge(s) + ' ago';
      const limit = parseFloat(a.dataset.staleAfter);
      const stale = s > limit || (feedQuiet && !!a.closest('tr[data-ticker]'));
      a.classList.toggle('stale', stale);
      const row = a.closest('tr[data-ticker]');
      if (row && row.querySelector('.badge')) {
        row.classList.toggle('stale', stale);
        row.classList.toggle('fresh', !stale);
        row.querySelector('.badge').textContent = stale ? 'STALE' : 'live';
      }
    });
  }

  // a market's close: its time in New York and a live countdown ("2 PM ET · closes in 39:12")
  function countdowns() {
    const now = Date.now() / 1000;
    document.querySelectorAll('.countdown[data-close]').forEach(c => {
      const left = Math.round(parseFloat(c.dataset.close) - now);
      const h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
      const pad = n => String(n).padStart(2, '0');
      const when = c.dataset.when ? c.dataset.when + ' · ' : '';
      const text = when + (left <= 0 ? 'closed' : 'closes in ' +
        (h ? h + ':' + pad(m) : m) + ':' + pad(s));
      if (c.textContent !== text) c.textContent = text;
    });
  }

  // the Markets page's search: every word typed is in the market's name or ticker ("$" and
  // "," aside); an event whose markets all miss is hidden with them
  const search = document.getElementById('market-search');
  function searchMarkets() {
    if (!search) return;
    const norm = t => t.toLowerCase().replace(/[$,]/g, '');
    const words = norm(search.value).split(/\s+/).filter(Boolean);
    let shown = 0;
    document.querySelectorAll('#markets tbody.event').forEach(g => {
      let any = false;
      g.querySelectorAll('tr[data-ticker]').forEach(tr => {
        const hay = norm(tr.dataset.search || '');
        const hit = words.every(w => hay.includes(w));
        tr.hidden = !hit;
        any = any || hit;
      });
      g.hidden = !any;
      if (any) shown += 1;
    });
    const none = document.getElementById('no-match');
    if (none) none.hidden = shown > 0;
  }
  if (search) search.addEventListener('input', searchMarkets);

  // phone: every table is a stack of cards, each cell labelled by its column's heading
  // (data-label, shown by rec.css below 640 px), so no column (buy, P&L) is off the screen
  function labels(root) {
    root.querySelectorAll('table').forEach(t => {
      const heads = [...t.querySelectorAll('thead th')].map(th => th.textContent.trim());
      t.querySelectorAll('tbody tr').forEach(tr => [...tr.children].forEach((td, i) => {
        if (td.colSpan === 1 && heads[i] && !td.dataset.label) td.dataset.label = heads[i];
      }));
    });
  }

  // phone: the pages behind a menu button instead of a sideways-scrolling row of links
  const menu = document.getElementById('menu-toggle');
  if (menu) {
    menu.addEventListener('click', () => {
      const open = menu.getAttribute('aria-expanded') !== 'true';
      menu.setAttribute('aria-expanded', String(open));
      document.getElementById('nav').classList.toggle('open', open);
    });
  }

  // depth bars: their width comes as data (the Content-Security-Policy allows no inline style)
  function bars(root) {
    root.querySelectorAll('.bar[data-width]').forEach(b => {
      b.style.width = b.dataset.width + '%';
    });
  }

  async function get(url, accept) {
    const r = await fetch(url, { headers: { Accept: accept }, credentials: 'same-origin',
      cache: 'no-store' });
    if (r.status === 401) { toLogin(); throw new Error('logged out'); }
    return r;
  }

  // a panel is not redrawn while the trader types in it, nor once a form in it has been
  // changed: the redraw would put the old values back right as the form is sent (a field
  // loses focus when its button is clicked, and the held redraw ran then)
  function busyForm(el) {
    if (el._edited) return true;
    const a = document.activeElement;
    return a && el.contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName);
  }
  ['input', 'change'].forEach(kind => document.addEventListener(kind, e => {
    if (!e.target.form) return;
    targets.forEach(t => { if (t.contains(e.target)) t._edited = true; });
  }));
  document.addEventListener('reset', e => {
    targets.forEach(t => { if (t.contains(e.target)) t._edited = false; });
  });

  // keyboard focus survives a redraw: the focused link or button is found again in the new
  // content (same tag, target and text; else the same place among the focusable ones)
  const FOCUSABLE = 'a[href],button,input,select,textarea,summary,[tabindex]';
  function focusMark(el) {
    const a = document.activeElement;
    if (!a || a === document.body || !el.contains(a)) return null;
    const sign = x => [x.tagName, x.getAttribute('href'), x.name, x.id, x.textContent.trim()]
      .join('|');
    return { sign: sign(a), sign_of: sign,
      index: [...el.querySelectorAll(FOCUSABLE)].indexOf(a) };
  }
  function focusRestore(el, mark) {
    if (!mark) return;
    const all = [...el.querySelectorAll(FOCUSABLE)];
    const again = all.find(x => mark.sign_of(x) === mark.sign) || all[mark.index];
    if (again) again.focus({ preventScroll: true });
  }

  async function refresh(el, ev) {
    if (el._busy || busyForm(el)) { el._dirty = ev || {}; return; }
    el._busy = true;
    try {
      if (el.dataset.chart) await drawChart(el);
      else {
        const r = await get(el.dataset.src, 'text/html');
        const html = await r.text();
        // the trader may have started on a form in it while this was on its way
        if (busyForm(el)) { el._dirty = ev || {}; return; }
        const mark = focusMark(el);
        el.innerHTML = html;
        focusRestore(el, mark);
        bars(el);
        labels(el);
        ages();
        countdowns();
        searchMarkets();
      }
      const now = Date.now();
      el.dataset.updated = String(now);
      rec.updates.push({ panel: el.dataset.panel || el.id, channel: ev && ev.channel,
        payload: ev && ev.payload, sent: ev && ev.at, at: now });
      if (rec.updates.length > 2000) rec.updates.splice(0, 1000);
    } catch (e) {
      console.warn('refresh', el.dataset.panel || el.id, e);
    } finally {
      el._busy = false;
      if (el._dirty && !busyForm(el)) { const d = el._dirty; el._dirty = null; refresh(el, d); }
    }
  }
  document.addEventListener('focusout', e => {
    targets.forEach(t => { if (t._dirty && t.contains(e.target)) setTimeout(() => refresh(t, t._dirty), 0); });
  });

  function chartMessage(el, text) {
    let p = el.querySelector('.chart-empty');
    if (!p) { p = document.createElement('p'); p.className = 'empty chart-empty'; el.prepend(p); }
    p.textContent = text;
    p.hidden = !text;
  }

  const usd = v => '$' + v.toLocaleString('en-US', { minimumFractionDigits: 2,
    maximumFractionDigits: 2 });

  // one uPlot in ``box`` (time in New York): created on the first data, then only fed
  function plot(box, series, axes, data) {
    const width = Math.max(280, box.clientWidth - 8);
    let u = charts.get(box);
    if (!u) {
      u = new uPlot({ width, height: 260, series, axes, tzDate: t => uPlot.tzDate(
        new Date(t * 1000), NY), scales: { x: { time: true } }, legend: { live: false } },
      data, box);
      charts.set(box, u);
    } else u.setData(data);
  }

  // the index chart: the index picked (#chart-index) over the range picked (#chart-range),
  // time in New York (ET), dollars on the left, momentum on its own axis on the right; the
  // strikes of the index's open series drawn across it (those within reach of the price) and
  // the settlement window before the next close shaded. Drag across it to zoom, double-click
  // to reset; a live update keeps the zoom. ``rec.plots[index]`` is the uPlot (tests read it).
  rec.plots = {};
  const NY = 'America/New_York';
  const etTime = t => new Date(t * 1000).toLocaleTimeString('en-US', { timeZone: NY,
    hour: 'numeric', minute: '2-digit', second: '2-digit' }) + ' ET';
  function strikesNear(marks, price) {
    return ((marks && marks.strikes) || []).map(s => s.strike)
      .filter(s => price && Math.abs(s - price) <= 0.01 * price);
  }
  function drawMarks(u) {
    const m = u._marks || {};
    const ctx = u.ctx, b = u.bbox;
    const drawn = { strikes: [], window: null };
    ctx.save();
    ctx.beginPath();
    ctx.rect(b.left, b.top, b.width, b.height);
    ctx.clip();
    if (m.close && m.window_sec) {
      const x0 = u.valToPos(m.close - m.window_sec, 'x', true);
      const x1 = u.valToPos(m.close, 'x', true);
      if (x1 >= b.left && x0 <= b.left + b.width) {
        ctx.fillStyle = 'rgba(220, 38, 38, 0.15)';
        ctx.fillRect(x0, b.top, Math.max(2, x1 - x0), b.height);
        drawn.window = [m.close - m.window_sec, m.close];
      }
    }
    ctx.setLineDash([6, 4]);
    ctx.lineWidth = 1;
    ctx.strokeStyle = '#6b7280';
    ctx.fillStyle = '#374151';
    ctx.font = `${Math.round(11 * devicePixelRatio)}px system-ui, sans-serif`;
    const [lo, hi] = [u.scales.usd.min, u.scales.usd.max];
    ((m.strikes) || []).forEach(s => {
      if (s.strike < lo || s.strike > hi) return;
      const y = u.valToPos(s.strike, 'usd', true);
      ctx.beginPath();
      ctx.moveTo(b.left, y);
      ctx.lineTo(b.left + b.width, y);
      ctx.stroke();
      ctx.fillText(usd(s.strike), b.left + 4, y - 3);
      drawn.strikes.push(s.strike);
    });
    ctx.restore();
    u._drawn = drawn;
  }
  function indexChart(box, name, hasMom, width) {
    const series = [{ label: 'time (ET)', value: (u, t) => t === null ? '—' : etTime(t) },
      { label: name, stroke: '#2563eb', width: 2, scale: 'usd', spanGaps: true,
        value: (u, v) => v === null ? '—' : usd(v) }];
    const axes = [{ label: 'time (ET)', labelSize: 20 },
      { scale: 'usd', size: 90, label: name + ' ($)', labelSize: 20,
        values: (u, vals) => vals.map(v => '$' + v.toLocaleString('en-US')) }];
    if (hasMom) {
      series.push({ label: 'momentum %', stroke: '#d97706', width: 1, scale: 'mom',
        spanGaps: true });
      axes.push({ scale: 'mom', side: 1, grid: { show: false }, label: 'momentum %',
        labelSize: 20 });
    }
    const u = new uPlot({ width, height: 300, series, axes, legend: { live: false },
      tzDate: t => uPlot.tzDate(new Date(t * 1000), NY),
      cursor: { drag: { x: true, y: false, setScale: true } },
      scales: { x: { time: true }, usd: { range: (u, lo, hi) => {
        const near = strikesNear(u._marks, u._last);
        const all = [lo, hi, ...near].filter(v => v !== null && v !== undefined);
        if (!all.length) return [0, 1];
        const a = Math.min(...all), z = Math.max(...all), pad = Math.max(1, (z - a) * 0.05);
        return [a - pad, z + pad];
      } } },
      hooks: { draw: [drawMarks], setSelect: [u => { if (u.select.width > 0) u._zoomed = true; }] },
    }, null, box);
    u.over.addEventListener('dblclick', () => { u._zoomed = false; });
    return u;
  }
  function drawIndex(el, rows, marks) {
    const name = el.dataset.index;
    let box = el.querySelector('figure.index-chart');
    const hasMom = rows.some(r => r.momentum !== null && r.momentum !== undefined);
    if (box && (box.dataset.index !== name || box._mom !== hasMom)) {
      const old = charts.get(box);
      if (old) old.destroy();
      charts.delete(box);
      box.remove();
      box = null;
    }
    if (!box) {
      box = document.createElement('figure');
      box.className = 'index-chart';
      box.dataset.index = name;
      box.append(document.createElement('figcaption'));
      el.append(box);
    }
    box._mom = hasMom;
    const data = [rows.map(r => r.t), rows.map(r => r.price)];
    if (hasMom) data.push(rows.map(r => r.momentum));
    // the next close within the range's reach: the x axis runs on to it (a point of no data)
    const last = rows[rows.length - 1];
    const reach = 60 * parseFloat(el.dataset.minutes || '60');
    if (last && marks && marks.close && marks.close > last.t && marks.close - last.t <= reach) {
      data.forEach((col, i) => col.push(i === 0 ? marks.close : null));
    }
    let u = charts.get(box);
    if (!u) {
      u = indexChart(box, name, hasMom, Math.max(280, (box.clientWidth || el.clientWidth) - 8));
      charts.set(box, u);
      u._marks = marks;
      u._last = last && last.price;
      u.setData(data);
    } else {
      u._marks = marks;
      u._last = last && last.price;
      u.setData(data, !u._zoomed);
    }
    rec.plots[name] = u;
    const near = strikesNear(marks, last && last.price);
    const words = last ? `${name}: ${usd(last.price)} at ${etTime(last.t)}` + (hasMom
      ? `, momentum ${last.momentum === null ? 'not computed' : last.momentum.toFixed(2) + ' %'}`
      : ', momentum: no data yet') + `; ${rows.length} points over ${el.dataset.minutes} min` +
      (near.length ? `; strikes drawn: ${near.map(usd).join(', ')}` : '') +
      (marks && marks.close ? `; settles on the ${marks.window_sec} s average before ` +
        etTime(marks.close) : '') : `${name}: no prices in the last ${el.dataset.minutes} min`;
    // the text alternative: on the figure (its name) and on the drawing itself (an image)
    box.setAttribute('aria-label', 'index chart, ' + words);
    u.root.setAttribute('role', 'img');
    u.root.setAttribute('aria-label', 'index chart, ' + words);
    box.querySelector('figcaption').textContent = words;
  }

  // the chart's pickers: another index or range fetches anew (and forgets the zoom)
  const indexBox = document.getElementById('index-chart');
  function chartSource() {
    const el = indexBox;
    el.dataset.src = `/api/index?minutes=${el.dataset.minutes}&index=` +
      encodeURIComponent(el.dataset.index);
    const fig = el.querySelector('figure.index-chart');
    const u = fig && charts.get(fig);
    if (u) u._zoomed = false;
    refresh(el, { channel: 'picker' });
  }
  const pickIndex = document.getElementById('chart-index');
  if (indexBox && pickIndex) {
    pickIndex.addEventListener('change', () => {
      indexBox.dataset.index = pickIndex.value;
      chartSource();
    });
  }
  document.querySelectorAll('#chart-range button[data-minutes]').forEach(b =>
    b.addEventListener('click', () => {
      document.querySelectorAll('#chart-range button').forEach(x =>
        x.setAttribute('aria-pressed', String(x === b)));
      indexBox.dataset.minutes = b.dataset.minutes;
      chartSource();
    }));

  async function drawChart(el) {
    const body = await (await get(el.dataset.src, 'application/json')).json();
    if (body.missing || body.error) { chartMessage(el, body.missing || body.error); return; }
    const rows = body.data || [];
    if (el.dataset.chart === 'index') {
      chartMessage(el, rows.length ? '' : `No ${el.dataset.index} prices in the last ` +
        `${el.dataset.minutes} min: is rec-price-feed running? (Services)`);
      drawIndex(el, rows, body.marks);
      return;
    }
    const c = v => (v === null || v === undefined ? null : v * 100);
    const data = [rows.map(r => r.t), rows.map(r => c(r.yes_bid)), rows.map(r => c(r.yes_ask)),
      rows.map(r => c(r.last_price))];
    const series = [{}, { label: 'bid ¢', stroke: '#16a34a', width: 1 },
      { label: 'ask ¢', stroke: '#dc2626', width: 1 },
      { label: 'last ¢', stroke: '#111827', width: 2, points: { show: true } }];
    chartMessage(el, rows.length ? '' : 'No ticks for this market in the last two hours.');
    plot(el, series, [{ label: 'time (ET)', labelSize: 20 }, { size: 50, label: 'yes price ¢' }],
      data);
    const last = rows[rows.length - 1];
    el.setAttribute('role', 'img');
    el.setAttribute('aria-label', last ? `price chart: at ${etTime(last.t)} yes bid ` +
      `${c(last.yes_bid)}¢, ask ${c(last.yes_ask)}¢, last ${c(last.last_price)}¢; ` +
      `${rows.length} ticks shown` : 'price chart: no ticks in the last two hours');
  }
  window.addEventListener('resize', () => charts.forEach((u, el) =>
    u.setSize({ width: Math.max(280, el.clientWidth - 8), height: u.height })));

  function onEvent(channel, e) {
    let d = {};
    try { d = JSON.parse(e.data); } catch (_) { /* keepalive */ }
    rec.lastEvent = Date.now();
    rec.events.push({ channel, payload: d.payload, sent: d.at, at: rec.lastEvent });
    if (rec.events.length > 2000) rec.events.splice(0, 1000);
    if (channel === 'heartbeat') {
      // a heartbeat replayed to a new page was measured `held` seconds ago
      try {
        rec.beat = JSON.parse(d.payload);
        rec.beatAt = rec.lastEvent - 1000 * (d.held || 0);
      } catch (_) { /**/ }
      staleness();
      ages();
      switches(rec.beat && rec.beat.trading);
      return;
    }
    if (channel === 'offline') { setLive(false, d.payload); return; }
    if (channel === 'hello') {
      setLive(d.payload === 'online', d.payload === 'online' ? '' : 'database');
      rec.hellos += 1;
      // the stream is subscribed from here on: fetch every live panel once, so a change made
      // between the page's render and this subscription (its NOTIFY came before we listened)
      // is not missed; on a reconnect, the same catches up with what the gap lost
      targets.filter(t => !t.dataset.chart || rec.hellos > 1)
        .forEach(t => refresh(t, { channel: 'resync' }));
      return;
    }
    if (channel === 'resync') setLive(true);
    let tickers = null;
    if (channel === 'rec_market_feed') {
      try { tickers = JSON.parse(d.payload).tickers || null; } catch (_) { tickers = null; }
    }
    targets.forEach(t => {
      if (!(t.dataset.channels || '').split(/\s+/).includes(channel)) return;
      const only = t.dataset.ticker || (t.dataset.src.match(/ticker=([^&]+)/) || [])[1] ||
        (t.dataset.src.match(/markets\/([^/]+)\/history/) || [])[1];
      if (tickers && only && !tickers.includes(decodeURIComponent(only))) return;
      refresh(t, { channel, payload: d.payload, at: d.at });
    });
  }

  if (window.EventSource) {  // every page: the live panels, and the freshness banner
    const es = new EventSource('/api/events');
    rec.source = es;
    channels.forEach(c => es.addEventListener(c, e => onEvent(c, e)));
    es.onerror = () => setLive(false, 'reconnecting');
  } else if (live) live.textContent = '';
  targets.filter(t => t.dataset.chart).forEach(t => refresh(t, { channel: 'load' }));
  bars(document);
  labels(document);
  ages();
  countdowns();
  searchMarkets();
  setInterval(() => { staleness(); ages(); countdowns(); }, 1000);
})();
