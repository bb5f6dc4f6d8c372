// The callgate softphone: registers with the gateway over WSS (JsSIP),
// places and takes one call at a time, sends DTMF as RFC 4733 telephone
// events in the audio stream, holds, mutes, and plays the far end's audio
// (and video, when it sends some).
//
// The gateway renders its SIP domain and WSS port into <body data-*>.
//
// For automated tests the page keeps stable element ids (#user, #password,
// #register, #unregister, #state, #number, #call, #answer, #hangup (it
// declines a ringing call), #hold, #mute, #dtmf-0..#dtmf-9, #dtmf-star,
// #dtmf-hash, #call-state, #timer, #remote-audio) and states in data-state
// attributes:
//   #state       unregistered | connecting | registering | registered |
//                disconnected | failed
//   #call-state  idle | calling | ringing | incoming | connecting | active |
//                held | ended
// window.softphone exposes the JsSIP UA and the current session.
'use strict';

(function () {
	const $ = (id) => document.getElementById(id);
	const config = {
		sipDomain: document.body.dataset.sipDomain || location.hostname,
		wssPort: Number(document.body.dataset.wssPort) || 7443,
	};
	const defaultWss = `wss://${location.hostname}:${config.wssPort}`;
	const title = document.title;
	const PREFS = 'callgate-phone';

	let ua = null;
	let session = null;
	let answeredAt = 0;
	let clock = null;

	// ---- Tones (Web Audio: nothing to download, nothing for CSP to block)

	let audioCtx = null;
	let stopRing = null;

	// The audio context, created or resumed (browsers want a click first).
	function audio() {
		const Ctx = window.AudioContext || window.webkitAudioContext;
		if (!audioCtx && Ctx) audioCtx = new Ctx();
		if (audioCtx && audioCtx.state === 'suspended') audioCtx.resume().catch(() => {});
		return audioCtx;
	}

	// Plays the frequencies in an on/off pattern (seconds), repeated until
	// stopTone().
	function ring(freqs, pattern) {
		stopTone();
		const ctx = audio();
		if (!ctx) return;
		const gain = ctx.createGain();
		gain.gain.value = 0;
		gain.connect(ctx.destination);
		const oscs = freqs.map((f) => {
			const o = ctx.createOscillator();
			o.frequency.value = f;
			o.connect(gain);
			o.start();
			return o;
		});
		const cycle = pattern.reduce((a, b) => a + b, 0);
		let next = ctx.currentTime + 0.05;
		const schedule = () => {
			while (next < ctx.currentTime + 2) {
				let t = next;
				pattern.forEach((len, i) => {
					gain.gain.setValueAtTime(i % 2 === 0 ? 0.1 : 0, t);
					t += len;
				});
				next += cycle;
			}
		};
		schedule();
		const timer = setInterval(schedule, 500);
		stopRing = () => {
			clearInterval(timer);
			gain.gain.cancelScheduledValues(0);
			oscs.forEach((o) => o.stop());
			gain.disconnect();
		};
	}

	function stopTone() {
		if (stopRing) stopRing();
		stopRing = null;
	}

	const DTMF_FREQS = {
		1: [697, 1209], 2: [697, 1336], 3: [697, 1477],
		4: [770, 1209], 5: [770, 1336], 6: [770, 1477],
		7: [852, 1209], 8: [852, 1336], 9: [852, 1477],
		'*': [941, 1209], 0: [941, 1336], '#': [941, 1477],
	};

	// A short keypad tone as feedback.
	function beep(key) {
		const ctx = audio();
		if (!ctx || !DTMF_FREQS[key]) return;
		const gain = ctx.createGain();
		gain.gain.value = 0.06;
		gain.connect(ctx.destination);
		const end = ctx.currentTime + 0.12;
		DTMF_FREQS[key].forEach((f) => {
			const o = ctx.createOscillator();
			o.frequency.value = f;
			o.connect(gain);
			o.start();
			o.stop(end);
		});
		setTimeout(() => gain.disconnect(), 300);
	}

	// ---- Display

	function setRegState(state, text) {
		const el = $('state');
		el.dataset.state = state;
		el.textContent = text;
		update();
	}

	function setCallState(state, text) {
		const el = $('call-state');
		el.dataset.state = state;
		el.textContent = text;
		update();
	}

	function showError(text) {
		const el = $('login-error');
		el.textContent = text || '';
		el.hidden = !text;
	}

	function showCertHint(wssUrl) {
		const hint = $('cert-hint');
		if (!wssUrl) {
			hint.hidden = true;
			return;
		}
		const https = wssUrl.replace(/^wss:/i, 'https:').replace(/^ws:/i, 'http:');
		$('cert-hint-url').textContent = wssUrl;
		$('cert-hint-link').href = https;
		$('cert-hint-link').textContent = https;
		hint.hidden = false;
	}

	// Enables and shows the controls that make sense now.
	function update() {
		const callState = $('call-state').dataset.state;
		const registered = !!ua && ua.isRegistered();
		const incoming = callState === 'incoming';
		const established = !!session && session.isEstablished();
		for (const id of ['user', 'password', 'wss-url', 'display-name']) $(id).disabled = !!ua;
		$('login').classList.toggle('active', !!ua);
		$('register').hidden = !!ua;
		$('unregister').hidden = !ua;
		$('whoami').hidden = !ua;
		$('call').hidden = incoming;
		$('call').disabled = !registered || !!session;
		$('answer').hidden = !incoming;
		$('hangup').disabled = !session;
		$('hangup').textContent = incoming ? 'Decline' : 'Hang up';
		$('hold').disabled = !established;
		$('mute').disabled = !established;
		$('video').disabled = !!session && !incoming;
		const held = established && session.isOnHold().local;
		$('hold').textContent = held ? 'Resume' : 'Hold';
		$('hold').setAttribute('aria-pressed', String(held));
		const muted = established && session.isMuted().audio;
		$('mute').textContent = muted ? 'Unmute' : 'Mute';
		$('mute').setAttribute('aria-pressed', String(muted));
		document.body.dataset.call = callState;
	}

	function clockText(ms) {
		const s = Math.floor(ms / 1000);
		const mm = String(Math.floor(s / 60) % 60).padStart(2, '0');
		const ss = String(s % 60).padStart(2, '0');
		return s >= 3600 ? `${Math.floor(s / 3600)}:${mm}:${ss}` : `${mm}:${ss}`;
	}

	function startClock() {
		if (clock) return;
		answeredAt = Date.now();
		$('timer').textContent = '00:00';
		clock = setInterval(() => {
			$('timer').textContent = clockText(Date.now() - answeredAt);
		}, 1000);
	}

	function stopClock() {
		clearInterval(clock);
		clock = null;
	}

	// "Alice (1001)", "1001", or "bob@other.example".
	function describe(identity) {
		if (!identity) return '';
		const uri = identity.uri;
		let who = uri.user || '';
		if (uri.host && uri.host !== config.sipDomain) who += `@${uri.host}`;
		const name = identity.display_name;
		return name && name !== uri.user ? `${name} (${who})` : who;
	}

	// ---- Registration

	function loadPrefs() {
		try {
			const p = JSON.parse(localStorage.getItem(PREFS) || '{}');
			if (p.user) $('user').value = p.user;
			if (p.wss) $('wss-url').value = p.wss;
			if (p.displayName) $('display-name').value = p.displayName;
		} catch (_) {
			// No storage: nothing remembered.
		}
	}

	function savePrefs(user, wss, displayName) {
		try {
			localStorage.setItem(PREFS, JSON.stringify({
				user,
				wss: wss === defaultWss ? '' : wss,
				displayName,
			}));
		} catch (_) {
			// No storage: nothing remembered.
		}
	}

	function register(event) {
		if (event) event.preventDefault();
		if (ua) return;
		showError('');
		const user = $('user').value.trim();
		const password = $('password').value;
		if (!user || !password) {
			showError('Enter your SIP username and password.');
			return;
		}
		const uri = user.includes('@')
			? `sip:${user.replace(/^sips?:/i, '')}`
			: `sip:${user}@${config.sipDomain}`;
		const wssUrl = $('wss-url').value.trim() || defaultWss;
		const displayName = $('display-name').value.trim();
		audio(); // this click unlocks sound for ringing later
		let mine;
		try {
			mine = new JsSIP.UA({
				sockets: [new JsSIP.WebSocketInterface(wssUrl)],
				uri,
				password,
				display_name: displayName || undefined,
				register: true,
				user_agent: `callgate-phone JsSIP/${JsSIP.version}`,
				connection_recovery_min_interval: 2,
				connection_recovery_max_interval: 30,
			});
		} catch (e) {
			showError(`Cannot start: ${e.message || e}`);
			return;
		}
		ua = mine;
		savePrefs(user, wssUrl, displayName);
		const who = mine.configuration.uri;
		$('whoami').textContent = `${who.user}@${who.host}`;
		const via = document.createElement('small');
		via.textContent = wssUrl;
		$('whoami').append(via);
		const ours = (fn) => (e) => {
			if (ua === mine) fn(e);
		};
		mine.on('connecting', ours(() => setRegState('connecting', `Connecting to ${wssUrl}…`)));
		mine.on('connected', ours(() => {
			showCertHint(null);
			setRegState('registering', 'Registering…');
		}));
		mine.on('disconnected', ours(() => {
			setRegState('disconnected', 'Disconnected, retrying…');
			showCertHint(wssUrl);
		}));
		mine.on('registered', ours(() => {
			showError('');
			setRegState('registered', 'Registered');
		}));
		mine.on('unregistered', ours(() => setRegState('unregistered', 'Not registered')));
		mine.on('registrationFailed', ours((e) => {
			const status = e.response ? ` (${e.response.status_code} ${e.response.reason_phrase})` : '';
			const C = JsSIP.C.causes;
			const transient = e.cause === C.CONNECTION_ERROR || e.cause === C.REQUEST_TIMEOUT;
			if (transient) {
				setRegState('failed', `Registration failed: ${e.cause}, retrying…`);
				return;
			}
			const why = e.cause === C.AUTHENTICATION_ERROR || e.cause === C.REJECTED
				? 'wrong username or password'
				: e.cause;
			stop();
			setRegState('failed', 'Registration failed');
			showError(`Registration failed: ${why}${status}.`);
		}));
		mine.on('newRTCSession', ours(onSession));
		setRegState('connecting', `Connecting to ${wssUrl}…`);
		mine.start();
	}

	// Stops the UA (unregisters) and ends any call.
	function stop() {
		const old = ua;
		ua = null;
		if (session) {
			try {
				session.terminate();
			} catch (_) {
				// Already ending.
			}
			finish(session, 'Logged out');
		}
		if (old) old.stop();
		showCertHint(null);
	}

	function unregister() {
		stop();
		setRegState('unregistered', 'Not registered');
	}

	// ---- Calls

	function onSession(e) {
		const s = e.session;
		if (session && s !== session) {
			// One call at a time.
			if (e.originator === 'remote') s.terminate({ status_code: 486, reason_phrase: 'Busy Here' });
			return;
		}
		session = s;
		const peer = describe(s.remote_identity);
		$('peer').textContent = peer;
		$('dtmf-sent').textContent = '';
		$('timer').textContent = '00:00';
		if (s.connection) attachMedia(s.connection);
		s.on('peerconnection', (ev) => attachMedia(ev.peerconnection));
		const mine = (fn) => (ev) => {
			if (session === s) fn(ev);
		};
		s.on('progress', mine((ev) => {
			if (s.direction !== 'outgoing') return;
			setCallState('ringing', 'Ringing…');
			// Early media plays from the far end; else a local ringback.
			if (ev.response && ev.response.body) stopTone();
			else if (!stopRing) ring([440, 480], [2, 4]);
		}));
		s.on('accepted', mine(() => {
			stopTone();
			startClock();
			setCallState('active', 'In call');
			showLocalVideo(s);
		}));
		s.on('confirmed', mine(() => {
			startClock();
			if ($('call-state').dataset.state !== 'held') setCallState('active', 'In call');
		}));
		const holdState = () => {
			const h = s.isOnHold();
			if (h.local) setCallState('held', 'On hold');
			else if (h.remote) setCallState('held', 'Held by the other party');
			else setCallState('active', 'In call');
		};
		s.on('hold', mine(holdState));
		s.on('unhold', mine(holdState));
		s.on('muted', mine(update));
		s.on('unmuted', mine(update));
		s.on('ended', mine((ev) => finish(s, cause(ev))));
		s.on('failed', mine((ev) => finish(s, cause(ev))));

		if (e.originator === 'remote') {
			setCallState('incoming', 'Incoming call');
			document.title = `Incoming call: ${peer}`;
			ring([400, 450], [0.4, 0.2, 0.4, 2]);
		} else {
			setCallState('calling', 'Calling…');
		}
	}

	// Why a call ended, in words.
	function cause(ev) {
		const C = JsSIP.C.causes;
		const remote = ev.originator === 'remote';
		switch (ev.cause) {
			case C.BYE:
				return remote ? 'The other party hung up' : 'Call ended';
			case C.CANCELED:
				return remote ? 'Missed call' : 'Call canceled';
			case C.BUSY:
				return 'Busy';
			case C.REJECTED:
				return 'Call declined';
			case C.NOT_FOUND:
				return 'Not found';
			case C.UNAVAILABLE:
				return 'Unavailable';
			case C.NO_ANSWER:
				return 'No answer';
			case C.USER_DENIED_MEDIA_ACCESS:
				return 'Microphone access denied';
			case C.AUTHENTICATION_ERROR:
				return 'Not allowed to call this number';
			default: {
				const status = ev.message && ev.message.status_code
					? ` (${ev.message.status_code} ${ev.message.reason_phrase})`
					: '';
				return `Call failed: ${ev.cause}${status}`;
			}
		}
	}

	function finish(s, text) {
		if (s !== session) return;
		session = null;
		stopTone();
		stopClock();
		document.title = title;
		for (const id of ['remote-audio', 'remote-video', 'local-video']) $(id).srcObject = null;
		$('videos').hidden = true;
		setCallState('ended', text);
	}

	function attachMedia(pc) {
		pc.addEventListener('track', (e) => {
			const stream = (e.streams && e.streams[0]) || new MediaStream([e.track]);
			const el = e.track.kind === 'video' ? $('remote-video') : $('remote-audio');
			if (el.srcObject !== stream) el.srcObject = stream;
			if (e.track.kind === 'video') $('videos').hidden = false;
			el.play().catch(() => {});
		});
	}

	function showLocalVideo(s) {
		const pc = s.connection;
		if (!pc) return;
		const tracks = pc.getSenders().map((x) => x.track).filter((t) => t && t.kind === 'video');
		if (!tracks.length) return;
		$('local-video').srcObject = new MediaStream(tracks);
		$('videos').hidden = false;
	}

	// What to dial: phone numbers lose their spaces; JsSIP adds the domain.
	function target(text) {
		let t = (text || '').trim();
		if (/^\+?[\d\s().\-*#]+$/.test(t)) t = t.replace(/[\s().-]/g, '');
		return t;
	}

	function call(text) {
		const to = target(typeof text === 'string' ? text : $('number').value);
		if (!to) {
			$('number').focus();
			return null;
		}
		if (!ua || session) return null;
		audio();
		const video = $('video').checked;
		try {
			return ua.call(to, {
				mediaConstraints: { audio: true, video },
				rtcOfferConstraints: { offerToReceiveAudio: true, offerToReceiveVideo: video },
				pcConfig: { iceServers: [] },
			});
		} catch (e) {
			setCallState('ended', `Cannot call ${to}: ${e.message || e}`);
			return null;
		}
	}

	function answer() {
		if (!session || session.direction !== 'incoming' || !session.isInProgress()) return;
		stopTone();
		document.title = title;
		setCallState('connecting', 'Connecting…');
		session.answer({
			mediaConstraints: { audio: true, video: $('video').checked },
			pcConfig: { iceServers: [] },
		});
	}

	function decline() {
		if (!session || session.direction !== 'incoming' || !session.isInProgress()) return;
		const s = session;
		s.terminate({ status_code: 603, reason_phrase: 'Decline' });
		finish(s, 'Call declined');
	}

	function hangup() {
		if (!session) return;
		if (session.direction === 'incoming' && session.isInProgress()) {
			decline();
			return;
		}
		const s = session;
		try {
			s.terminate();
		} catch (_) {
			// Already ending.
		}
		finish(s, 'Call ended');
	}

	function toggleHold() {
		if (!session || !session.isEstablished()) return;
		if (session.isOnHold().local) session.unhold();
		else session.hold();
	}

	function toggleMute() {
		if (!session || !session.isEstablished()) return;
		if (session.isMuted().audio) session.unmute({ audio: true });
		else session.mute({ audio: true });
	}

	// A keypad key: a DTMF tone in a call, else a character of the number.
	function key(k) {
		beep(k);
		if (session && session.isEstablished()) {
			session.sendDTMF(k, {
				transportType: JsSIP.C.DTMF_TRANSPORT.RFC2833,
				duration: 160,
				interToneGap: 70,
			});
			$('dtmf-sent').textContent += k;
			return;
		}
		insert(k);
	}

	function insert(text) {
		const input = $('number');
		const start = input.selectionStart ?? input.value.length;
		const end = input.selectionEnd ?? input.value.length;
		input.value = input.value.slice(0, start) + text + input.value.slice(end);
		input.setSelectionRange(start + text.length, start + text.length);
	}

	// ---- Wiring

	function wireKeypad() {
		for (const button of document.querySelectorAll('.keypad button')) {
			const k = button.dataset.key;
			let longPress = null;
			let consumed = false;
			// Holding 0 types "+".
			button.addEventListener('pointerdown', () => {
				consumed = false;
				if (k !== '0' || session) return;
				longPress = setTimeout(() => {
					consumed = true;
					insert('+');
				}, 600);
			});
			const cancel = () => clearTimeout(longPress);
			button.addEventListener('pointerup', cancel);
			button.addEventListener('pointerleave', cancel);
			button.addEventListener('click', () => {
				cancel();
				if (consumed) {
					consumed = false;
					return;
				}
				key(k);
			});
		}
		$('backspace').addEventListener('click', () => {
			const input = $('number');
			input.value = input.value.slice(0, -1);
		});
	}

	function wireKeyboard() {
		document.addEventListener('keydown', (e) => {
			if (e.ctrlKey || e.metaKey || e.altKey) return;
			const inLogin = e.target instanceof HTMLElement && !!e.target.closest('#login');
			if (inLogin) return;
			const established = session && session.isEstablished();
			if (established && DTMF_FREQS[e.key]) {
				e.preventDefault();
				key(e.key);
				$(`dtmf-${e.key === '*' ? 'star' : e.key === '#' ? 'hash' : e.key}`).classList.add('pressed');
				setTimeout(() => document.querySelectorAll('.keypad .pressed')
					.forEach((b) => b.classList.remove('pressed')), 150);
				return;
			}
			if (e.key === 'Enter' && e.target === $('number')) {
				e.preventDefault();
				if ($('call-state').dataset.state === 'incoming') answer();
				else call();
			}
		});
	}

	$('domain').textContent = config.sipDomain;
	$('wss-url').placeholder = defaultWss;
	loadPrefs();
	$('login').addEventListener('submit', register);
	$('unregister').addEventListener('click', unregister);
	$('call').addEventListener('click', () => call());
	$('answer').addEventListener('click', answer);
	$('hangup').addEventListener('click', hangup);
	$('hold').addEventListener('click', toggleHold);
	$('mute').addEventListener('click', toggleMute);
	wireKeypad();
	wireKeyboard();
	window.addEventListener('beforeunload', () => {
		if (ua) stop();
	});
	update();

	window.softphone = {
		JsSIP,
		config,
		get ua() {
			return ua;
		},
		get session() {
			return session;
		},
		register(user, password) {
			if (user !== undefined) $('user').value = user;
			if (password !== undefined) $('password').value = password;
			register();
		},
		unregister,
		call,
		answer,
		decline,
		hangup,
		hold: toggleHold,
		mute: toggleMute,
		sendDTMF: key,
	};
})();
