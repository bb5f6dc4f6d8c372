// Browser side of the end-to-end tests: one JsSIP phone per page, driven by
// tests/e2e/browser.mjs through window.phone. Everything that happens is
// appended to phone.events ({ seq, t, type, ...details }) so the test can wait
// for an event after a known sequence number.
/* global JsSIP */
'use strict';

(function () {
  const phone = {
    events: [],
    // SIP requests this page sent: { t, method, callId, routes } (the Route
    // header values as sent), kept apart from events to keep those readable.
    sent: [],
    ua: null,
    sessions: {},
    nextSession: 1,
    // What to do with an incoming call: { mode: 'manual' | 'answer' | 'reject', status }.
    incoming: { mode: 'manual' },
    config: null,
  };

  function record(type, details) {
    const e = Object.assign({ seq: phone.events.length, t: Date.now(), type }, details || {});
    phone.events.push(e);
    return e;
  }

  function noteSent(text) {
    const head = text.split('\r\n\r\n')[0].split('\r\n');
    const m = /^([A-Z]+) \S+ SIP\/2\.0$/.exec(head[0]);
    if (!m) return; // a response
    const value = (name) => head.filter((l) => l.toLowerCase().startsWith(name + ':')).map((l) => l.slice(name.length + 1).trim());
    phone.sent.push({ t: Date.now(), method: m[1], callId: (value('call-id')[0] || ''), routes: value('route') });
    if (phone.sent.length > 500) phone.sent.shift();
  }

  function statusOf(message) {
    return message && typeof message.status_code === 'number' ? message.status_code : null;
  }

  function contactsOf(response) {
    if (!response || !response.headers || !response.headers.Contact) return [];
    const out = [];
    for (const h of response.headers.Contact) {
      if (Array.isArray(h.parsed)) h.parsed.forEach((c) => out.push(c.toString()));
      else out.push(h.raw);
    }
    return out;
  }

  function offerHasVideo(request) {
    return typeof request.body === 'string' && /^m=video /m.test(request.body);
  }

  function watchSession(id, session) {
    session.on('progress', (e) => record('progress', { id, originator: e.originator, status: statusOf(e.response) }));
    session.on('accepted', (e) =>
      record('accepted', {
        id,
        originator: e.originator,
        status: statusOf(e.response),
        callId: e.response ? e.response.call_id : null,
        // Of the 2xx to our INVITE: the route set of the dialog, reversed.
        recordRoutes: e.originator === 'remote' && e.response ? e.response.getHeaders('Record-Route') : [],
      }),
    );
    session.on('confirmed', (e) => record('confirmed', { id, originator: e.originator }));
    session.on('ended', (e) => record('ended', { id, originator: e.originator, cause: e.cause }));
    session.on('failed', (e) =>
      record('failed', { id, originator: e.originator, cause: e.cause, status: statusOf(e.message) }),
    );
    session.on('peerconnection:setremotedescriptionfailed', (e) =>
      record('sdp-error', { id, what: 'setRemoteDescription', error: String(e) }),
    );
    session.on('hold', (e) => record('hold', { id, originator: e.originator }));
    session.on('unhold', (e) => record('unhold', { id, originator: e.originator }));
  }

  function callOptions(opts) {
    const pcConfig = { iceServers: [] };
    if (opts && opts.bundlePolicy) pcConfig.bundlePolicy = opts.bundlePolicy;
    return {
      mediaConstraints: { audio: true, video: !!(opts && opts.video) },
      pcConfig,
    };
  }

  // Starts a UA; resolves once it is registered (or when registration fails,
  // or with register=false once the WebSocket is connected).
  phone.start = function (cfg) {
    phone.config = cfg;
    const socket = new JsSIP.WebSocketInterface(cfg.wsUrl);
    const send = socket.send.bind(socket);
    socket.send = function (message) {
      noteSent(String(message));
      return send(message);
    };
    const options = {
      sockets: [socket],
      uri: `sip:${cfg.user}@${cfg.domain}`,
      password: cfg.password,
      register: cfg.register !== false,
      session_timers: false,
      register_expires: 300,
      connection_recovery_min_interval: 1,
      connection_recovery_max_interval: 3,
      no_answer_timeout: 60,
    };
    if (cfg.instanceId) options.instance_id = cfg.instanceId;
    const ua = new JsSIP.UA(options);
    phone.ua = ua;
    ua.on('connecting', (e) => record('connecting', { attempts: e.attempts }));
    ua.on('connected', () => record('connected'));
    ua.on('disconnected', (e) => record('disconnected', { error: !!e.error, code: e.code === undefined ? null : e.code }));
    ua.on('registered', (e) => record('registered', { status: statusOf(e.response), contacts: contactsOf(e.response) }));
    ua.on('unregistered', (e) => record('unregistered', { status: statusOf(e.response), cause: e.cause || null }));
    ua.on('registrationFailed', (e) =>
      record('registrationFailed', {
        cause: e.cause,
        status: statusOf(e.response),
        challenges: e.response
          ? e.response.getHeaders('WWW-Authenticate').concat(e.response.getHeaders('Proxy-Authenticate'))
          : [],
      }),
    );
    ua.on('newMessage', (e) => {
      if (e.originator !== 'remote') return;
      record('message', {
        from: e.request.from.uri.toString(),
        contentType: e.request.getHeader('Content-Type'),
        body: e.request.body,
      });
    });
    ua.on('newRTCSession', (e) => {
      const session = e.session;
      if (e.originator === 'local') return; // outgoing sessions are registered by phone.call
      const id = `s${phone.nextSession++}`;
      phone.sessions[id] = session;
      watchSession(id, session);
      const video = offerHasVideo(e.request);
      record('incoming', {
        id,
        from: e.request.from.uri.toString(),
        callId: e.request.call_id,
        video,
        recordRoutes: e.request.getHeaders('Record-Route'),
      });
      const policy = phone.incoming;
      if (policy.mode === 'answer') {
        session.answer(callOptions({ video, bundlePolicy: policy.bundlePolicy }));
      } else if (policy.mode === 'reject') {
        session.terminate({ status_code: policy.status || 486 });
      }
    });
    ua.start();
    return phone.waitFor(cfg.register === false ? ['connected'] : ['registered', 'registrationFailed'], 0, cfg.timeoutMs || 10000);
  };

  // Resolves with the first event of one of `types` with seq >= since.
  phone.waitFor = function (types, since, timeoutMs) {
    return new Promise((resolve) => {
      const deadline = Date.now() + timeoutMs;
      (function poll() {
        const hit = phone.events.find((e) => e.seq >= since && types.includes(e.type));
        if (hit) return resolve(hit);
        if (Date.now() > deadline) return resolve({ type: 'timeout', waitedFor: types });
        setTimeout(poll, 25);
      })();
    });
  };

  phone.setIncoming = function (policy) {
    phone.incoming = policy;
  };

  phone.call = function (target, opts) {
    const id = `s${phone.nextSession++}`;
    const uri = /^sip:/.test(target) ? target : `sip:${target}@${phone.config.domain}`;
    // ua.call() sends the INVITE only after getUserMedia and ICE gathering,
    // so listeners added right after it see every event.
    const session = phone.ua.call(uri, callOptions(opts));
    phone.sessions[id] = session;
    watchSession(id, session);
    record('outgoing', { id, target: uri });
    return id;
  };

  phone.answer = function (id, opts) {
    phone.sessions[id].answer(callOptions(opts));
  };

  phone.hangup = function (id, opts) {
    const s = phone.sessions[id];
    if (s && !s.isEnded()) s.terminate(opts || {});
  };

  phone.hangupAll = function () {
    for (const s of Object.values(phone.sessions)) {
      try {
        if (!s.isEnded()) s.terminate();
      } catch (_) {
        // already gone
      }
    }
  };

  phone.sessionState = function (id) {
    const s = phone.sessions[id];
    if (!s) return null;
    const pc = s.connection;
    return {
      status: s.status,
      ended: s.isEnded(),
      established: s.isEstablished(),
      ice: pc ? pc.iceConnectionState : null,
      connection: pc ? pc.connectionState : null,
      localSdp: pc && pc.localDescription ? pc.localDescription.sdp : null,
      remoteSdp: pc && pc.remoteDescription ? pc.remoteDescription.sdp : null,
    };
  };

  // RTP packet counters of a session's RTCPeerConnection, per media kind;
  // for received audio also its energy (totalAudioEnergy, which grows only
  // while the audio is played out: see playRemote) and for received video
  // the decoded frames.
  phone.stats = async function (id) {
    const s = phone.sessions[id];
    const pc = s && s.connection;
    const out = {
      audio: { inbound: 0, outbound: 0, energy: 0, samplesDuration: 0 },
      video: { inbound: 0, outbound: 0, framesDecoded: 0 },
      ice: pc ? pc.iceConnectionState : null,
      connection: pc ? pc.connectionState : null,
    };
    if (!pc) return out;
    const report = await pc.getStats();
    report.forEach((r) => {
      const kind = r.kind || r.mediaType;
      if (!out[kind]) return;
      if (r.type === 'inbound-rtp') {
        out[kind].inbound += r.packetsReceived || 0;
        if (kind === 'audio') {
          out.audio.energy += r.totalAudioEnergy || 0;
          out.audio.samplesDuration += r.totalSamplesDuration || 0;
        } else {
          out.video.framesDecoded += r.framesDecoded || 0;
        }
      }
      if (r.type === 'outbound-rtp') out[kind].outbound += r.packetsSent || 0;
    });
    return out;
  };

  // Plays a session's received tracks in a media element, as a softphone
  // page does (Chromium decodes received audio only for a sink). Returns
  // the number of tracks attached.
  phone.playRemote = function (id) {
    const s = phone.sessions[id];
    const pc = s && s.connection;
    if (!pc) return 0;
    const tracks = pc.getReceivers().map((r) => r.track).filter((t) => t && t.readyState === 'live');
    const el = document.createElement(tracks.some((t) => t.kind === 'video') ? 'video' : 'audio');
    el.autoplay = true;
    el.muted = false;
    el.srcObject = new MediaStream(tracks);
    el.dataset.session = id;
    document.body.appendChild(el);
    const played = el.play();
    if (played && played.catch) played.catch((err) => record('play-error', { id, error: String(err) }));
    return tracks.length;
  };

  // Hold / resume by re-INVITE (sendonly offer / sendrecv offer). Resolves
  // with { ok: true } once the re-INVITE got its 2xx, { ok: false, ... }
  // when JsSIP refused to start it or no answer came in time.
  function reoffer(method, id, timeoutMs) {
    const s = phone.sessions[id];
    if (!s) return Promise.resolve({ ok: false, error: 'no such session' });
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve({ ok: false, error: 'timeout' }), timeoutMs || 10000);
      const started = s[method]({}, () => {
        clearTimeout(timer);
        record(method + '-done', { id });
        resolve({ ok: true });
      });
      if (!started) {
        clearTimeout(timer);
        resolve({ ok: false, error: method + '() refused in state ' + s.status });
      }
    });
  }
  phone.hold = (id, timeoutMs) => reoffer('hold', id, timeoutMs);
  phone.unhold = (id, timeoutMs) => reoffer('unhold', id, timeoutMs);

  // DTMF: with { transportType: 'RFC2833' } JsSIP sends RFC 4733 events
  // through the RTCDTMFSender, otherwise SIP INFO.
  phone.sendDTMF = function (id, tones, options) {
    const s = phone.sessions[id];
    if (!s) return { ok: false, error: 'no such session' };
    try {
      s.sendDTMF(tones, options || {});
      record('dtmf-sent', { id, tones });
      return { ok: true };
    } catch (err) {
      return { ok: false, error: String(err) };
    }
  };

  phone.sendMessage = function (target, body, timeoutMs) {
    const uri = /^sip:/.test(target) ? target : `sip:${target}@${phone.config.domain}`;
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve({ ok: false, cause: 'timeout', status: null }), timeoutMs || 10000);
      phone.ua.sendMessage(uri, body, {
        contentType: 'text/plain',
        eventHandlers: {
          succeeded: (e) => {
            clearTimeout(timer);
            resolve({ ok: true, status: statusOf(e.response) });
          },
          failed: (e) => {
            clearTimeout(timer);
            resolve({ ok: false, cause: e.cause, status: statusOf(e.response) });
          },
        },
      });
    });
  };

  // Closes the WebSocket under JsSIP without unregistering; JsSIP reconnects
  // and registers again on its own.
  phone.dropSocket = function () {
    const ws = phone.ua._transport && phone.ua._transport.socket && phone.ua._transport.socket._ws;
    if (!ws) return false;
    ws.close();
    return true;
  };

  phone.stop = function (timeoutMs) {
    const since = phone.events.length;
    if (!phone.ua) return Promise.resolve({ type: 'disconnected' });
    phone.ua.stop();
    return phone.waitFor(['disconnected'], since, timeoutMs || 5000);
  };

  window.phone = phone;
  record('loaded', { jssip: JsSIP.version });
})();
