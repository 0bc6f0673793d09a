// framehub notebook widget: the anywidget front-end (framehub.notebook).
//
// framehub._bundle puts the browser client (web/framehub.js and its
// modules) in front of this file, so `RemoteFramebufferView` and
// `formatBitrate` are in scope. Pixels come over the view's own WebSocket
// to the hub and input goes straight back to it; the kernel comm carries
// only the traits below (and, once a second, the view's stats).

/** The hub's `/health` answers `ok`: whether jupyter-server-proxy reaches it. */
const proxyProbes = new Map();

function jupyterBaseUrl() {
  const el = document.getElementById('jupyter-config-data');
  if (!el) return null;
  try {
    const cfg = JSON.parse(el.textContent || '{}');
    let base = cfg.baseUrl || '/';
    if (!base.startsWith('/')) base = new URL(base, location.href).pathname;
    return base.endsWith('/') ? base : base + '/';
  } catch {
    return null;
  }
}

function probeProxy(base, port) {
  const key = `${base}|${port}`;
  if (!proxyProbes.has(key)) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 3000);
    const p = fetch(`${base}proxy/${port}/health`, { credentials: 'same-origin', signal: ctl.signal })
      .then(async (r) => r.ok && (await r.text()).trim() === 'ok')
      .catch(() => false)
      .finally(() => clearTimeout(timer));
    proxyProbes.set(key, p);
  }
  return proxyProbes.get(key);
}

/**
 * Where the view connects, in order: the explicit `url`; the
 * jupyter-server-proxy path (`<base_url>proxy/<port>/<stream>`) when Jupyter
 * serves the page and the proxy answers; the page's host with the hub's port.
 *
 * @returns {Promise<{url: string, via: 'url'|'proxy'|'direct'}>}
 */
export async function resolveUrl(model) {
  const explicit = model.get('url');
  if (explicit) return { url: explicit, via: 'url' };
  const port = model.get('port');
  const stream = encodeURIComponent(model.get('stream') || 'default');
  const http = location.protocol === 'http:' || location.protocol === 'https:';
  const ws = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const base = http ? jupyterBaseUrl() : null;
  if (base !== null && model.get('proxy') !== false && (await probeProxy(base, port))) {
    return { url: `${ws}//${location.host}${base}proxy/${port}/${stream}`, via: 'proxy' };
  }
  // The page's host (a notebook served from another machine reaches the hub
  // there), or the hub's own host when the page has none (VS Code's webviews).
  const host = http && location.hostname ? location.hostname : model.get('host') || '127.0.0.1';
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return { url: `${http ? ws : 'ws:'}//${h}:${port}/${stream}`, via: 'direct' };
}

function cssSize(v) {
  if (typeof v === 'number') return v > 0 ? `${v}px` : '';
  return v || '';
}

function statusText(s, via) {
  const parts = [s.state];
  if (s.width) parts.push(`${s.width}×${s.height}`);
  if (s.transport) parts.push(s.transport === 'webcodecs' ? 'h264' : 'image');
  parts.push(`${s.fps} fps`);
  if (s.latencyMs !== null && s.latencyMs !== undefined) parts.push(`${s.latencyMs} ms`);
  parts.push(formatBitrate(s.bitrateBps));
  if (via === 'proxy') parts.push('via jupyter-server-proxy');
  return parts.join(' · ');
}

function render({ model, el }) {
  const root = document.createElement('div');
  root.className = 'framehub-widget';
  Object.assign(root.style, { display: 'flex', flexDirection: 'column', maxWidth: '100%' });
  const box = document.createElement('div');
  Object.assign(box.style, { position: 'relative', background: '#111', overflow: 'hidden' });
  const status = document.createElement('div');
  status.className = 'framehub-status';
  Object.assign(status.style, {
    font: '11px/1.5 ui-monospace, Menlo, monospace',
    color: '#666',
    padding: '1px 4px',
    whiteSpace: 'nowrap',
    overflow: 'hidden',
    textOverflow: 'ellipsis',
  });
  root.append(box, status);
  el.appendChild(root);

  const layout = () => {
    root.style.width = cssSize(model.get('width')) || '100%';
    box.style.height = cssSize(model.get('height')) || '480px';
    status.style.display = model.get('status') ? '' : 'none';
  };
  layout();

  let view = null;
  let via = null;
  let gen = 0;
  let statsTimer = null;
  let disposed = false;

  const connect = async () => {
    const my = ++gen;
    if (view) view.dispose();
    view = null;
    status.textContent = 'connecting';
    const where = await resolveUrl(model);
    if (disposed || my !== gen) return;
    via = where.via;
    const opts = {
      url: where.url,
      fit: model.get('fit') || 'contain',
      imageOnly: !!model.get('image_only'),
      input: model.get('input') !== false,
    };
    const token = model.get('token');
    if (token) opts.token = token;
    const v = new RemoteFramebufferView(box, opts);
    view = v;
    v.canvas.tabIndex = 0; // keyboard input once clicked
    v.canvas.style.outline = 'none';
    root.dataset.url = where.url;
    root.dataset.via = where.via;
    v.addEventListener('state', (e) => {
      root.dataset.state = e.detail.state;
      status.textContent = statusText(v.getStats(), via);
      if (e.detail.state === 'error') status.textContent = `error ${e.detail.code ?? ''} ${e.detail.reason || ''}`;
    });
    v.addEventListener('stats', (e) => {
      if (e.detail.source === 'client') status.textContent = statusText(e.detail, via);
    });
    // Expose the view to page scripts (tests, measurements).
    (globalThis.__framehubViews ||= new Set()).add(v);
  };

  // The view's figures, to the kernel once a second (`widget.stats`).
  statsTimer = setInterval(() => {
    if (!view || !model.get('report_stats')) return;
    const s = view.getStats();
    model.set('stats', {
      state: s.state, fps: s.fps, latency_ms: s.latencyMs, rtt_ms: s.rttMs, decode_ms: s.decodeMs,
      width: s.width, height: s.height, transport: s.transport, frames_drawn: s.framesDrawn,
      bitrate_bps: s.bitrateBps, url: s.url, via,
    });
    model.save_changes();
  }, 1000);

  const reconnectTraits = ['url', 'port', 'stream', 'token', 'image_only', 'input', 'host', 'proxy'];
  const onReconnect = () => connect();
  const onLayout = () => layout();
  const onFit = () => view && (view.fit = model.get('fit') || 'contain');
  for (const t of reconnectTraits) model.on(`change:${t}`, onReconnect);
  for (const t of ['width', 'height', 'status']) model.on(`change:${t}`, onLayout);
  model.on('change:fit', onFit);
  connect();

  // anywidget calls this when the view goes away (cell cleared, output
  // removed, widget closed): the WebSocket closes with it.
  return () => {
    disposed = true;
    gen++;
    clearInterval(statsTimer);
    for (const t of reconnectTraits) model.off(`change:${t}`, onReconnect);
    for (const t of ['width', 'height', 'status']) model.off(`change:${t}`, onLayout);
    model.off('change:fit', onFit);
    if (view) {
      globalThis.__framehubViews?.delete(view);
      view.dispose();
    }
    view = null;
    root.remove();
  };
}

export default { render };
