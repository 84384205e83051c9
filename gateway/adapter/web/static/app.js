// botmesh web chat. Everything a user or the server says is put on the page
// with textContent, never as HTML.
'use strict';

(() => {
  const KEY = 'botmesh.web.v1';
  const TOKEN_KEY = 'botmesh.web.v1.token';
  const PROTOCOL = 'botmesh.web.v1';
  const MAX_HISTORY = 500;
  const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];
  const CLOSE_UNAUTHORIZED = 4401;

  const $ = (id) => document.getElementById(id);
  const ui = {
    log: $('log'), empty: $('empty'), form: $('composer'), input: $('input'),
    banner: $('banner'), bannerText: $('banner-text'), retry: $('retry'),
    statusText: $('status-text'), user: $('user'), clear: $('clear'),
    login: $('login'), loginForm: $('login-form'), loginWhy: $('login-why'), token: $('token'),
  };

  // ---- state, kept in sessionStorage so that a reload keeps the history --
  let st = load();
  const byId = new Map(st.history.map((e) => [e.id, e]));
  const nodes = new Map();

  function fresh() {
    return { ticket: '', conversation: randomId(), epoch: '', seen: 0, user: '', history: [] };
  }

  function load() {
    try {
      const s = JSON.parse(sessionStorage.getItem(KEY));
      if (s && Array.isArray(s.history) && typeof s.conversation === 'string') return s;
    } catch (_) { /* a damaged store starts afresh */ }
    return fresh();
  }

  function save() {
    if (st.history.length > MAX_HISTORY) {
      for (const e of st.history.splice(0, st.history.length - MAX_HISTORY)) byId.delete(e.id);
    }
    for (;;) {
      try {
        sessionStorage.setItem(KEY, JSON.stringify(st));
        return;
      } catch (_) {
        if (st.history.length < 2) return;
        for (const e of st.history.splice(0, st.history.length >> 1)) byId.delete(e.id);
      }
    }
  }

  function randomId() {
    const b = new Uint8Array(12);
    crypto.getRandomValues(b);
    return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  }

  // ---- rendering --------------------------------------------------------
  function el(tag, cls, text) {
    const n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined) n.textContent = text;
    return n;
  }

  function clock(ms) {
    return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  // A reply is shown as a monospace block when it has several lines or is
  // JSON; one line of prose stays prose.
  function isBlock(text) {
    return text.includes('\n') || text.includes('\t') || /^\s*[[{]/.test(text);
  }

  function content(text) {
    if (!isBlock(text)) return document.createTextNode(text);
    const pre = el('pre', 'block');
    pre.appendChild(el('code', '', text));
    const copy = el('button', 'copy', 'copy');
    copy.type = 'button';
    copy.addEventListener('click', () => {
      navigator.clipboard.writeText(text).then(() => { copy.textContent = 'copied'; }, () => { copy.textContent = 'copy failed'; });
      setTimeout(() => { copy.textContent = 'copy'; }, 1500);
    });
    pre.appendChild(copy);
    return pre;
  }

  const STATE_WORDS = {
    queued: 'not sent yet: waiting for the connection',
    sent: 'sending…',
    failed: 'not sent',
  };

  function render(e) {
    if (e.who === 'notice') {
      const n = el('div', 'notice kind-' + e.kind, e.text);
      n.dataset.id = e.id;
      return n;
    }
    const n = el('div', 'msg ' + e.who + (e.who === 'bot' ? ' kind-' + e.kind : ''));
    n.dataset.id = e.id;
    const b = el('div', 'bubble');
    if (e.who === 'me') {
      b.textContent = e.text;
      n.appendChild(b);
      const words = e.note || STATE_WORDS[e.state];
      const m = el('div', 'meta' + (words ? ' ' + e.state : ''), words ? words : clock(e.time));
      m.title = new Date(e.time).toLocaleString();
      n.appendChild(m);
      return n;
    }
    n.dataset.for = e.for || '';
    n.dataset.kind = e.kind;
    if (e.kind === 'pending') {
      const dots = el('span', 'dots');
      dots.append(el('i'), el('i'), el('i'));
      b.append(dots, el('span', 'wait', waitWords(e)));
    } else {
      if (e.kind === 'progress') {
        const dots = el('span', 'dots');
        dots.append(el('i'), el('i'), el('i'));
        b.appendChild(dots);
        b.appendChild(document.createTextNode(' '));
      }
      if (e.kind === 'error') b.appendChild(el('span', 'label', 'error'));
      if (e.late) b.appendChild(el('span', 'label', 'late reply'));
      const c = content(e.text);
      if (c.nodeType === Node.ELEMENT_NODE) b.classList.add('has-block');
      b.appendChild(c);
    }
    n.appendChild(b);
    const m = el('div', 'meta', e.kind === 'progress' ? 'working on it…' : clock(e.time));
    m.title = new Date(e.time).toLocaleString();
    n.appendChild(m);
    return n;
  }

  function waitWords(e) {
    const s = Math.floor((Date.now() - e.time) / 1000);
    return s < 2 ? 'waiting for a reply…' : 'waiting for a reply · ' + s + ' s';
  }

  function nearBottom() {
    return ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 80;
  }

  function show(e, after) {
    const stick = nearBottom();
    const n = render(e);
    const old = nodes.get(e.id);
    if (old) {
      old.replaceWith(n);
    } else if (after && nodes.get(after)) {
      nodes.get(after).after(n);
    } else {
      ui.log.appendChild(n);
    }
    nodes.set(e.id, n);
    ui.empty.hidden = st.history.length > 0;
    if (stick || !old) ui.log.scrollTop = ui.log.scrollHeight;
  }

  function add(e, after) {
    if (after && byId.has(after)) {
      const i = st.history.indexOf(byId.get(after));
      st.history.splice(i + 1, 0, e);
    } else {
      st.history.push(e);
    }
    byId.set(e.id, e);
    show(e, after);
    save();
  }

  function update(e) {
    show(e);
    save();
  }

  function notice(text, kind) {
    add({ id: 'n:' + randomId(), who: 'notice', kind: kind || 'info', text, time: Date.now() });
  }

  setInterval(() => {
    for (const e of st.history) {
      if (e.who === 'bot' && e.kind === 'pending') {
        const w = nodes.get(e.id) && nodes.get(e.id).querySelector('.wait');
        if (w) w.textContent = waitWords(e);
      }
    }
  }, 1000);

  // ---- banner and status -----------------------------------------------
  let down = null; // words about the connection, while it is down
  let mesh = null; // words about the mesh not answering

  function setConn(state, words) {
    document.body.dataset.conn = state;
    ui.statusText.textContent = words;
  }

  function paintBanner() {
    const text = down || mesh;
    document.body.dataset.mesh = mesh ? 'down' : 'up';
    if (!down && welcomed) ui.statusText.textContent = mesh ? 'mesh not answering' : 'connected';
    ui.banner.hidden = !text;
    ui.banner.classList.toggle('mesh', !down && !!mesh);
    ui.retry.hidden = !down;
    ui.bannerText.textContent = text || '';
  }

  // ---- connection --------------------------------------------------------
  let ws = null;
  let welcomed = false;
  let attempt = 0;
  let everConnected = false;
  let retryTimer = 0;
  let countdown = 0;
  let maxFrame = 0;
  let needToken = false;

  // The websocket sits next to the page, so that the chat also works behind
  // a proxy that serves it under a path (https://ops.example.com/chat/).
  function wsURL() {
    const u = new URL('ws', location.href);
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    u.search = '';
    u.hash = '';
    return u.href;
  }

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  }

  function connect() {
    clearTimeout(retryTimer);
    clearInterval(countdown);
    if (ws) return;
    setConn('connecting', 'connecting…');
    let sock;
    try {
      sock = new WebSocket(wsURL(), PROTOCOL);
    } catch (err) {
      lost({ code: 0, reason: String(err) });
      return;
    }
    ws = sock;
    sock.onopen = () => hello(sock);
    sock.onmessage = (m) => {
      let f;
      try {
        f = JSON.parse(m.data);
      } catch (_) {
        return;
      }
      if (f && typeof f.type === 'string') handle(f);
    };
    sock.onclose = (ev) => {
      if (ws !== sock) return;
      ws = null;
      welcomed = false;
      lost(ev);
    };
  }

  // hello opens the session: the ticket the server gave this tab before,
  // if any, so that it is the same user again.
  function hello(sock) {
    const f = { type: 'hello', session: st.ticket, conversation: st.conversation, epoch: st.epoch, seen: st.seen };
    if (token()) f.token = token();
    sock.send(JSON.stringify(f));
  }

  function lost(ev) {
    if (ev.code === CLOSE_UNAUTHORIZED) {
      needToken = true;
      setConn('down', 'not signed in');
      down = 'Not connected: this botmesh needs an access token.';
      paintBanner();
      askToken();
      return;
    }
    let why;
    if (ev.code === 1001) why = 'the server stopped or is restarting.';
    else if (ev.code === 1009) why = 'the server refused a message that was too big.';
    else if (everConnected) why = 'the connection to the botmesh server was lost.';
    else why = 'the botmesh server at ' + location.host + ' does not answer.';
    const delay = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)] * (0.8 + Math.random() * 0.4);
    attempt++;
    const at = Date.now() + delay;
    const tick = () => {
      const s = Math.max(1, Math.ceil((at - Date.now()) / 1000));
      down = "Can't reach botmesh: " + why + ' Reconnecting in ' + s + ' s…';
      paintBanner();
    };
    setConn('down', 'offline');
    tick();
    countdown = setInterval(tick, 250);
    retryTimer = setTimeout(connect, delay);
  }

  function connectNow() {
    if (ws) return;
    attempt = 0;
    connect();
  }

  function askToken() {
    ui.loginWhy.textContent = token() ? 'That token was not accepted. Try again.' : 'This botmesh web chat needs an access token.';
    ui.loginWhy.classList.toggle('bad', !!token());
    ui.token.value = '';
    if (!ui.login.open) ui.login.showModal();
  }

  ui.loginForm.addEventListener('submit', () => {
    sessionStorage.setItem(TOKEN_KEY, ui.token.value);
    ui.token.value = '';
    needToken = false;
    setTimeout(connectNow, 0);
  });

  ui.retry.addEventListener('click', () => {
    if (needToken) askToken();
    else connectNow();
  });
  window.addEventListener('online', connectNow);

  // ---- frames from the server -------------------------------------------
  function handle(f) {
    switch (f.type) {
      case 'welcome': return welcome(f);
      case 'ack': return ack(f);
      case 'reply': return reply(f);
      case 'error': return refused(f);
      default: return undefined; // a newer server: ignore what we do not know
    }
  }

  function welcome(f) {
    welcomed = true;
    everConnected = true;
    attempt = 0;
    maxFrame = f.max_frame || 0;
    st.ticket = f.session || st.ticket;
    st.user = f.name || f.user || '';
    if (f.conversation) st.conversation = f.conversation;
    if (f.epoch !== st.epoch) {
      // The server does not know this conversation (it restarted, or the
      // tab was away too long): replies to what it had taken are gone.
      for (const e of st.history) {
        if (e.who === 'me' && e.state === 'acked') {
          e.state = 'done';
          const r = byId.get('r:' + e.id);
          if (r && (r.kind === 'pending' || r.kind === 'progress')) {
            Object.assign(r, { kind: 'error', text: 'No reply: botmesh restarted before answering. Send it again.', time: Date.now(), lostReply: true });
            show(r);
          }
          show(e);
        }
      }
      st.epoch = f.epoch || '';
      st.seen = 0;
    }
    save();
    ui.user.textContent = st.user ? 'you are ' + st.user : '';
    down = null;
    setConn('connected', 'connected');
    paintBanner();
    clearInterval(countdown);
    for (const e of st.history) {
      if (e.who === 'me' && (e.state === 'queued' || e.state === 'sent')) transmit(e);
    }
  }

  function ack(f) {
    const e = byId.get(f.in_reply_to);
    if (e && e.who === 'me' && (e.state === 'sent' || e.state === 'queued')) {
      e.state = 'acked';
      update(e);
    }
  }

  function reply(f) {
    if (f.seq && f.seq > st.seen) st.seen = f.seq;
    const text = typeof f.text === 'string' ? f.text : '';
    const kind = f.kind === 'error' || f.kind === 'progress' ? f.kind : 'reply';
    const final = kind !== 'progress';
    const q = byId.get(f.in_reply_to);
    const key = 'r:' + (f.in_reply_to || f.id);
    let r = byId.get(key);
    if (final && f.mesh_down) mesh = 'The mesh is not answering: ' + text;
    else if (final && kind === 'reply') mesh = null;
    paintBanner();
    if (r && r.rid === f.id) {
      save();
      return; // seen already (a replay after a reconnect)
    }
    if (r && (r.kind === 'reply' || r.kind === 'error') && !r.lostReply) {
      if (!final) return save();
      // A second final reply: the gateway posts a reply that comes after
      // its own timeout notice.
      const late = { id: key + ':' + f.id, who: 'bot', for: f.in_reply_to, kind, text, rid: f.id, time: Date.now(), late: true };
      if (!byId.has(late.id)) add(late);
      return;
    }
    if (!r) {
      r = { id: key, who: 'bot', for: f.in_reply_to || '', kind, text, rid: f.id, time: Date.now() };
      add(r, q ? q.id : undefined);
    } else {
      Object.assign(r, { kind, text, rid: f.id, time: Date.now(), lostReply: false });
      update(r);
    }
    if (q && q.who === 'me' && final) {
      q.state = 'done';
      q.note = '';
      update(q);
    } else if (q && q.who === 'me' && q.state !== 'acked' && q.state !== 'done') {
      q.state = 'acked';
      update(q);
    }
  }

  function refused(f) {
    if (f.code === 'unauthorized') return; // the close that follows asks for the token
    if (f.code === 'unknown_session') {
      // The server does not know this tab's session (it restarted, or the
      // tab was away too long): ask for a new one, as a new user.
      st.ticket = '';
      save();
      if (ws && ws.readyState === WebSocket.OPEN) hello(ws);
      return;
    }
    const q = f.in_reply_to && byId.get(f.in_reply_to);
    if (q && q.who === 'me') {
      q.state = 'failed';
      q.note = 'not sent: ' + f.message;
      update(q);
      const r = byId.get('r:' + q.id);
      if (r) {
        Object.assign(r, { kind: 'error', text: f.message, time: Date.now() });
        update(r);
      }
      return;
    }
    notice(f.message || 'The server refused a frame.', 'error');
  }

  // ---- sending -----------------------------------------------------------
  function frameOf(e) {
    return JSON.stringify({ type: 'message', id: e.id, text: e.text });
  }

  function transmit(e) {
    if (!ws || !welcomed || ws.readyState !== WebSocket.OPEN) {
      if (e.state !== 'queued') {
        e.state = 'queued';
        update(e);
      }
      return;
    }
    ws.send(frameOf(e));
    if (e.state !== 'sent') {
      e.state = 'sent';
      update(e);
    }
  }

  function say(text) {
    // Blank lines around a message mean nothing; the router trims too.
    text = text.replace(/^\s*\n/, '').trimEnd();
    if (!text.trim()) return false;
    const e = { id: randomId(), who: 'me', text, time: Date.now(), state: 'queued' };
    const size = new TextEncoder().encode(frameOf(e)).length;
    if (maxFrame && size > maxFrame) {
      notice('Not sent: the message is ' + size + ' bytes; this chat takes at most ' + maxFrame + '.', 'error');
      return false;
    }
    add(e);
    add({ id: 'r:' + e.id, who: 'bot', for: e.id, kind: 'pending', text: '', time: Date.now() });
    lastSent = text;
    transmit(e);
    return true;
  }

  let lastSent = '';
  for (let i = st.history.length - 1; i >= 0; i--) {
    if (st.history[i].who === 'me') { lastSent = st.history[i].text; break; }
  }

  function grow() {
    ui.input.style.height = 'auto';
    ui.input.style.height = ui.input.scrollHeight + 'px';
  }

  ui.form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (say(ui.input.value)) {
      ui.input.value = '';
      grow();
    }
    ui.input.focus();
  });

  // Enter sends; Shift+Enter is a new line. The line break Enter would
  // insert is refused too, for keyboards (and drivers) that send it apart
  // from the keydown.
  let shift = false;
  ui.input.addEventListener('beforeinput', (ev) => {
    if (ev.inputType === 'insertLineBreak' && !shift) ev.preventDefault();
  });
  ui.input.addEventListener('keyup', (ev) => { shift = ev.shiftKey; });
  ui.input.addEventListener('keydown', (ev) => {
    shift = ev.shiftKey;
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      ui.form.requestSubmit();
    } else if (ev.key === 'ArrowUp' && ui.input.value === '' && lastSent) {
      ev.preventDefault();
      ui.input.value = lastSent;
      grow();
    }
  });
  ui.input.addEventListener('input', grow);

  for (const chip of document.querySelectorAll('[data-say]')) {
    chip.addEventListener('click', () => {
      say(chip.dataset.say);
      ui.input.focus();
    });
  }

  ui.clear.addEventListener('click', () => {
    for (const e of st.history) {
      const n = nodes.get(e.id);
      if (n) n.remove();
    }
    st.history = [];
    byId.clear();
    nodes.clear();
    mesh = null;
    paintBanner();
    save();
    ui.empty.hidden = false;
  });

  // ---- start -------------------------------------------------------------
  for (const e of st.history) show(e);
  ui.empty.hidden = st.history.length > 0;
  ui.user.textContent = st.user ? 'you are ' + st.user : '';
  connect();
})();
