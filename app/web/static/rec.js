// rec-web: live panels and charts. One EventSource (/api/events, fed by PostgreSQL NOTIFY);
// a notification re-fetches the panels and charts that listen to its channel. Nothing here
// asks the server on a timer: the only timer re-computes the "data age" texts locally.
(() => {
  'use strict';
  const rec = window.__rec = { events: [], updates: [], online: false, hellos: 0 };
  const live = document.getElementById('live');
  const targets = [...document.querySelectorAll('[data-panel],[data-chart]')];
  const channels = new Set(['hello', 'resync', 'offline']);
  targets.forEach(t => (t.dataset.channels || '').split(/\s+/).filter(Boolean)
    .forEach(c => channels.add(c)));
  const charts = new Map();

  function setLive(on, why) {
    rec.online = on;
    if (!live) return;
    live.textContent = on ? 'live' : 'offline' + (why ? ': ' + why : '');
    live.className = 'live ' + (on ? 'on' : 'off');
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

  function ages() {
    const now = Date.now() / 1000;
    document.querySelectorAll('.age[data-ts]').forEach(a => {
      const t = parseFloat(a.dataset.ts);
      if (!t) return;
      const s = Math.max(0, now - t);
      a.textContent = fmtAge(s) + ' ago';
      const limit = parseFloat(a.dataset.staleAfter);
      const stale = s > limit;
      a.classList.toggle('stale', stale);
      const row = a.closest('tr[data-ticker]');
      if (row && row.querySelector('.badge')) {
        row.classList.toggle('stale', stale);
        row.classList.toggle('fresh', !stale);
        row.querySelector('.badge').textContent = stale ? 'STALE' : 'live';
      }
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

  function busyForm(el) {
    const a = document.activeElement;
    return a && el.contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName);
  }

  async function refresh(el, ev) {
    if (el._busy || busyForm(el)) { el._dirty = ev || {}; return; }
    el._busy = true;
    try {
      if (el.dataset.chart) await drawChart(el);
      else {
        const r = await get(el.dataset.src, 'text/html');
        el.innerHTML = await r.text();
        bars(el);
        ages();
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

  async function drawChart(el) {
    const body = await (await get(el.dataset.src, 'application/json')).json();
    if (body.missing || body.error) { chartMessage(el, body.missing || body.error); return; }
    const rows = body.data || [];
    let data, series, axes, empty;
    if (el.dataset.chart === 'index') {
      const name = rows.length ? rows[rows.length - 1].index_name : null;
      const mine = rows.filter(r => r.index_name === name);
      data = [mine.map(r => r.t), mine.map(r => r.price), mine.map(r => r.momentum)];
      series = [{}, { label: name || 'index', stroke: '#2563eb', width: 2, scale: 'usd' },
        { label: 'momentum', stroke: '#d97706', width: 1, scale: 'mom' }];
      axes = [{}, { scale: 'usd', size: 70 }, { scale: 'mom', side: 1, grid: { show: false } }];
      empty = 'No index prices in the last hour: is rec-price-feed running? (Services)';
    } else {
      const c = v => (v === null || v === undefined ? null : v * 100);
      data = [rows.map(r => r.t), rows.map(r => c(r.yes_bid)), rows.map(r => c(r.yes_ask)),
        rows.map(r => c(r.last_price))];
      series = [{}, { label: 'bid ¢', stroke: '#16a34a', width: 1 },
        { label: 'ask ¢', stroke: '#dc2626', width: 1 },
        { label: 'last ¢', stroke: '#111827', width: 2, points: { show: true } }];
      axes = [{}, { size: 50 }];
      empty = 'No ticks for this market in the last two hours.';
    }
    if (!data[0].length) { chartMessage(el, empty); }
    else chartMessage(el, '');
    const width = Math.max(280, el.clientWidth - 8);
    let u = charts.get(el);
    if (!u) {
      u = new uPlot({ width, height: 260, series, axes,
        scales: { x: { time: true } }, legend: { live: false } }, data, el);
      charts.set(el, u);
    } else {
      u.setData(data);
    }
  }
  window.addEventListener('resize', () => charts.forEach((u, el) =>
    u.setSize({ width: Math.max(280, el.clientWidth - 8), height: 260 })));

  function onEvent(channel, e) {
    let d = {};
    try { d = JSON.parse(e.data); } catch (_) { /* keepalive */ }
    rec.events.push({ channel, payload: d.payload, sent: d.at, at: Date.now() });
    if (rec.events.length > 2000) rec.events.splice(0, 1000);
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

  if (window.EventSource && targets.length) {
    const es = new EventSource('/api/events');
    rec.source = es;
    channels.forEach(c => es.addEventListener(c, e => onEvent(c, e)));
    es.onerror = () => setLive(false, 'reconnecting');
  } else if (live) live.textContent = '';
  targets.filter(t => t.dataset.chart).forEach(t => refresh(t, { channel: 'load' }));
  bars(document);
  ages();
  setInterval(ages, 1000);
})();
