//! relay-load: many browsers calling through a media relay.
//!
//! Each call (WebRTC mode) opens a SIP-over-WSS connection (or shares one,
//! `--calls-per-conn`), REGISTERs with MD5 digest, sends an INVITE with a
//! browser-like offer (UDP/TLS/RTP/SAVPF, ICE credentials, the fingerprint
//! of the generator's DTLS certificate, setup:actpass, rtcp-mux, PCMU/8000
//! only, a=mid:0 and a BUNDLE group) to the callee (`--callee`, the
//! echoing trunk phone), and on the 200 OK reads the relay's candidate,
//! ICE credentials, fingerprint and setup role, sends a STUN Binding
//! request with USE-CANDIDATE, MESSAGE-INTEGRITY and FINGERPRINT, runs the
//! DTLS handshake and keys SRTP. Then 50 packets/s of 160-byte G.711
//! payload, carrying a packet number and the send time, go to the relay,
//! through it to the echo (rtp-echo, which stamps its receive and send
//! times), and back; the generator decrypts them and measures each of the
//! two one-way trips through the relay.
//!
//! `--plain` skips SIP, ICE, DTLS and SRTP: plain RTP to a forwarder
//! (udp-forward), the raw baseline.
//!
//! Calls ramp in steps (`--steps 50,100,200`): calls are added until the
//! step's count is up, then after `--warmup` seconds a window of
//! `--duration` seconds is measured: packets sent in the window and how
//! many came back (loss), the one-way latency distribution, and the CPU
//! time the relay processes (`--pid`, with their descendants) used in it,
//! per relayed packet. A step passes with loss below `--loss-limit` % and
//! p99 one-way latency below `--p99-limit-ms`; the ramp stops after the
//! first step that does not (unless `--keep-going`). With `--measure-from
//! N`, steps below N (except `--measure-also`) are only set up, taken as
//! passing (an earlier ramp measured them): later ramps of a series start
//! measuring near the previous result.
//!
//! The generator runs on one thread (tokio current_thread) with one UDP
//! socket for all calls' media, so it fits one core.
//!
//! Output: a line per step for people and a `RESULT key=value ...` line
//! per step for scripts.
//!
//!   relay-load write-users --dir DIR --realm R --count N [--first 10000]
//!     [--prefix u] [--password-prefix pw-] [--extra NAME:PASSWORD]...
//! writes DIR/users.toml ([[users]] for callgate) and DIR/db/{htable,version}
//! (Kamailio db_text HA1 table), user i being {prefix}{first+i} with
//! password {password-prefix}{user}.

mod engine;
mod sip;

use engine::Engine;
use relay_load::args::Args;
use relay_load::net::{realtime_ns, udp_socket};
use relay_load::procfs;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::io::Interest;
use tokio::sync::{mpsc, watch, Semaphore};

const USAGE: &str = "usage: relay-load [--plain] --steps 50,100,200 [--warmup 3] [--duration 10] [--grace 1]
  WebRTC: --server 127.0.0.1:7443 [--domain 127.0.0.1] [--callee 1000] [--user-prefix u] [--first 10000]
          [--password-prefix pw-] [--sources 127.0.0.2-127.0.0.41] [--calls-per-conn 1]
          [--setup-concurrency 32] [--setup-timeout 20] [--no-bundle] [--srtp any|gcm|cm]
  plain:  --forward IP:PORT (one forwarder address for all calls) | --forward-base PORT (call i -> PORT+2i)
  ramp:   [--measure-from N] (steps below N are set up, not measured) [--measure-also N,...]
  both:   [--media 127.0.0.1:10000] [--payload 160] [--ptime 20] [--pid PID,...] [--load-pid PID,...]
          [--relay-core 1] [--load-core 0] [--loss-limit 0.5] [--p99-limit-ms 5] [--keep-going] [--label TEXT]
       relay-load write-users --dir DIR --realm R --count N [--first 10000] [--prefix u]
          [--password-prefix pw-] [--extra NAME:PASSWORD]";

struct Opts {
    plain: bool,
    forward: Option<SocketAddr>,
    forward_base: Option<u16>,
    server: SocketAddr,
    domain: String,
    callee: String,
    user_prefix: String,
    first: u64,
    password_prefix: String,
    sources: Vec<IpAddr>,
    calls_per_conn: usize,
    setup_concurrency: usize,
    setup_timeout: Duration,
    bundle: bool,
    srtp_profiles: Vec<media::SrtpProfile>,
    media: SocketAddr,
    payload: usize,
    ptime: u64,
    steps: Vec<usize>,
    warmup: Duration,
    duration: Duration,
    grace: Duration,
    pids: Vec<u32>,
    load_pids: Vec<u32>,
    relay_core: usize,
    load_core: usize,
    loss_limit: f64,
    p99_limit_us: f64,
    keep_going: bool,
    measure_from: usize,
    measure_also: Vec<usize>,
    label: String,
}

/// `a.b.c.d-a.b.c.e` (last octet range) or a comma-separated list.
fn parse_sources(a: &Args, s: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        if let Some((x, y)) = part.split_once('-') {
            let x: Ipv4Addr = x.parse().unwrap_or_else(|_| a.die("bad --sources"));
            let y: Ipv4Addr = y.parse().unwrap_or_else(|_| a.die("bad --sources"));
            out.extend((u32::from(x)..=u32::from(y)).map(|v| IpAddr::V4(Ipv4Addr::from(v))));
        } else {
            out.push(part.parse().unwrap_or_else(|_| a.die("bad --sources")));
        }
    }
    if out.is_empty() {
        a.die("--sources is empty");
    }
    out
}

fn parse_opts(a: &Args) -> Opts {
    let steps: Vec<usize> = a.list("steps");
    if steps.is_empty() || steps.windows(2).any(|w| w[1] <= w[0]) {
        a.die("--steps must be rising call counts, e.g. 50,100,200");
    }
    let plain = a.flag("plain");
    let forward: Option<SocketAddr> = a.get("forward").map(|_| a.req("forward"));
    let forward_base: Option<u16> = a.get("forward-base").map(|_| a.req("forward-base"));
    if plain && forward.is_none() == forward_base.is_none() {
        a.die("--plain needs one of --forward or --forward-base");
    }
    Opts {
        plain,
        forward,
        forward_base,
        server: a.or("server", "127.0.0.1:7443".parse().unwrap()),
        domain: a.or("domain", "127.0.0.1".to_string()),
        callee: a.or("callee", "1000".to_string()),
        user_prefix: a.or("user-prefix", "u".to_string()),
        first: a.or("first", 10000),
        password_prefix: a.or("password-prefix", "pw-".to_string()),
        sources: parse_sources(a, &a.or("sources", "127.0.0.1".to_string())),
        calls_per_conn: a.or("calls-per-conn", 1usize).max(1),
        setup_concurrency: a.or("setup-concurrency", 32usize).max(1),
        setup_timeout: Duration::from_secs_f64(a.or("setup-timeout", 20.0)),
        bundle: !a.flag("no-bundle"),
        srtp_profiles: match a.or("srtp", "any".to_string()).as_str() {
            "any" => media::SrtpProfile::ALL.to_vec(),
            "gcm" => vec![media::SrtpProfile::AeadAes128Gcm],
            "cm" => vec![media::SrtpProfile::Aes128CmHmacSha1_80],
            other => a.die(&format!("--srtp {other}: any, gcm or cm")),
        },
        media: a.or("media", "127.0.0.1:10000".parse().unwrap()),
        payload: a.or("payload", 160),
        ptime: a.or("ptime", 20u64).max(1),
        steps,
        warmup: Duration::from_secs_f64(a.or("warmup", 3.0)),
        duration: Duration::from_secs_f64(a.or("duration", 10.0)),
        grace: Duration::from_secs_f64(a.or("grace", 1.0)),
        pids: a.list("pid"),
        load_pids: a.list("load-pid"),
        relay_core: a.or("relay-core", 1),
        load_core: a.or("load-core", 0),
        loss_limit: a.or("loss-limit", 0.5),
        p99_limit_us: a.or("p99-limit-ms", 5.0) * 1000.0,
        keep_going: a.flag("keep-going"),
        measure_from: a.or("measure-from", 0),
        measure_also: a.list("measure-also"),
        label: a.or("label", "-".to_string()),
    }
}

/// Raises the open-files soft limit to the hard limit.
fn raise_nofile() {
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

struct Ctx {
    o: Opts,
    engine: Rc<RefCell<Engine>>,
    tls: tokio_rustls::TlsConnector,
    sem: Rc<Semaphore>,
    /// Connections lost after setup.
    lost: Cell<u64>,
    /// Calls hung up by the far end.
    ended: Cell<u64>,
    /// The first SDP answer, printed once for the log.
    first_answer: RefCell<Option<String>>,
}

type Done = mpsc::UnboundedSender<(u32, Result<(), String>)>;

/// One browser: connect, register, place its calls, keep the connection
/// up, answer the server's requests, hang up on stop.
async fn browser(
    ctx: Rc<Ctx>,
    conn: u64,
    calls: Vec<u32>,
    done: Done,
    mut stop: watch::Receiver<bool>,
) {
    let o = &ctx.o;
    let permit = ctx.sem.acquire().await.ok();
    let user = format!("{}{}", o.user_prefix, o.first + conn);
    let mut ua = sip::Ua {
        password: format!("{}{}", o.password_prefix, user),
        user,
        domain: o.domain.clone(),
        host: format!("{}.invalid", &sip::token(conn, 1)[..12]),
        seed: conn,
        salt: 100,
    };
    let src = o.sources[conn as usize % o.sources.len()];
    let t = o.setup_timeout;
    let setup = async {
        let mut ws = sip::connect(o.server, src, &ctx.tls).await?;
        sip::register(&mut ws, &mut ua, t).await?;
        Ok::<_, String>(ws)
    };
    let mut ws = match tokio::time::timeout(t, setup).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            for idx in calls {
                let _ = done.send((idx, Err(e.clone())));
            }
            return;
        }
        Err(_) => {
            for idx in calls {
                let _ = done.send((idx, Err("connect/register timed out".into())));
            }
            return;
        }
    };
    let mut dialogs: Vec<(u32, sip::Dialog)> = Vec::new();
    for idx in calls {
        let offer = ctx.engine.borrow_mut().prepare(idx);
        let sdp = sip::offer(
            o.media,
            &offer.ufrag,
            &offer.pwd,
            &offer.fingerprint,
            offer.ssrc,
            u64::from(idx) + 1,
            o.bundle,
        );
        let (dialog, answer) = match sip::invite(&mut ws, &mut ua, &o.callee, &sdp, t).await {
            Ok(x) => x,
            Err(e) => {
                let _ = done.send((idx, Err(e)));
                continue;
            }
        };
        if ctx.first_answer.borrow().is_none() {
            *ctx.first_answer.borrow_mut() = Some(answer.clone());
        }
        let started =
            sip::parse_answer(&answer).and_then(|a| ctx.engine.borrow_mut().start_webrtc(idx, &a));
        dialogs.push((idx, dialog));
        let rx = match started {
            Ok(rx) => rx,
            Err(e) => {
                let _ = done.send((idx, Err(format!("answer: {e}"))));
                continue;
            }
        };
        let r = match rx.await {
            Ok(r) => r,
            Err(_) => Err("media setup dropped".into()),
        };
        let _ = done.send((idx, r));
    }
    drop(permit);
    // Idle: answer what the server sends (BYE of a call it ended,
    // OPTIONS), keep the WebSocket alive (pongs go out as we read).
    loop {
        tokio::select! {
            m = sip::next_message(&mut ws) => match m {
                Ok(m) => {
                    if sip::status_code(&m).is_none() && !m.starts_with("ACK ") {
                        if m.starts_with("BYE ") {
                            let cid = sip::header(&m, "Call-ID").unwrap_or("").to_string();
                            if let Some(pos) = dialogs.iter().position(|(_, d)| d.call_id == cid) {
                                let (idx, _) = dialogs.remove(pos);
                                ctx.engine.borrow_mut().end(idx);
                                ctx.ended.set(ctx.ended.get() + 1);
                            }
                        }
                        let _ = sip::send(&mut ws, sip::ok_response(&m)).await;
                    }
                }
                Err(_) => {
                    ctx.lost.set(ctx.lost.get() + 1);
                    for (idx, _) in &dialogs {
                        ctx.engine.borrow_mut().end(*idx);
                    }
                    return;
                }
            },
            _ = stop.changed() => break,
        }
    }
    for (idx, mut d) in dialogs {
        ctx.engine.borrow_mut().end(idx);
        let _ = d.bye(&mut ws, &mut ua, Duration::from_secs(3)).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
}

async fn media_loop(engine: Rc<RefCell<Engine>>, sock: tokio::net::UdpSocket) {
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            r = sock.readable() => {
                if r.is_err() {
                    continue;
                }
                // try_io clears readiness when the read hits WouldBlock.
                let _ = sock.try_io(Interest::READABLE, || {
                    match engine.borrow_mut().on_readable(8) {
                        Ok(true) => Ok(()),
                        Ok(false) => Err(std::io::ErrorKind::WouldBlock.into()),
                        Err(e) => Err(e),
                    }
                });
            }
            _ = tick.tick() => engine.borrow_mut().on_tick(),
        }
    }
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

async fn run(o: Opts) {
    raise_nofile();
    let std_sock = udp_socket(o.media, 64 << 20, true, true).unwrap_or_else(|e| {
        eprintln!("relay-load: bind {}: {e}", o.media);
        std::process::exit(1);
    });
    let fd = std_sock.as_raw_fd();
    let sock = tokio::net::UdpSocket::from_std(std_sock).expect("tokio socket");
    let engine = Engine::new(
        fd,
        o.plain,
        o.payload,
        o.ptime,
        o.setup_timeout,
        o.srtp_profiles.clone(),
    )
    .unwrap_or_else(|e| {
        eprintln!("relay-load: {e}");
        std::process::exit(1);
    });
    let engine = Rc::new(RefCell::new(engine));
    tokio::task::spawn_local(media_loop(engine.clone(), sock));
    let ctx = Rc::new(Ctx {
        sem: Rc::new(Semaphore::new(o.setup_concurrency)),
        o,
        engine: engine.clone(),
        tls: sip::tls_connector(),
        lost: Cell::new(0),
        ended: Cell::new(0),
        first_answer: RefCell::new(None),
    });
    let o = &ctx.o;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut browsers = Vec::new();
    let hz = procfs::clk_tck() as f64;
    let me = std::process::id();
    let mut load_pids = o.load_pids.clone();
    load_pids.push(me);
    let mut placed: usize = 0;
    let mut established: usize = 0;
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    let mut best: Option<usize> = None;
    // What ended the ramp: a failing step the relay is to blame for
    // ("relay"), one where the generator's core was saturated ("load"),
    // or none ("steps": every step passed).
    let mut limited_by = "steps";
    // Whether `best` is a step set up but not measured (--measure-from).
    let mut assumed = false;
    let mode = if o.plain { "plain" } else { "webrtc" };
    eprintln!(
        "relay-load {}: {mode}, steps {:?}, warmup {:?}, window {:?}, relay pids {:?}",
        o.label, o.steps, o.warmup, o.duration, o.pids
    );
    for &step in &o.steps {
        // Add calls up to the step.
        let t_setup = Instant::now();
        let want = step - placed;
        let first_new = placed as u32;
        if o.plain {
            let mut e = engine.borrow_mut();
            for idx in first_new..first_new + want as u32 {
                let dest = match (o.forward, o.forward_base) {
                    (Some(a), _) => a,
                    (None, Some(b)) => SocketAddr::new(o.media.ip(), (b as u32 + 2 * idx) as u16),
                    _ => unreachable!(),
                };
                e.start_plain(idx, dest);
            }
            established += want;
        } else {
            let mut idx = first_new;
            let end = first_new + want as u32;
            while idx < end {
                let n = (o.calls_per_conn as u32).min(end - idx);
                let calls: Vec<u32> = (idx..idx + n).collect();
                let conn = u64::from(idx) / o.calls_per_conn as u64;
                browsers.push(tokio::task::spawn_local(browser(
                    ctx.clone(),
                    conn,
                    calls,
                    done_tx.clone(),
                    stop_rx.clone(),
                )));
                idx += n;
            }
            let mut got = 0;
            while got < want {
                match done_rx.recv().await {
                    Some((_, Ok(()))) => established += 1,
                    Some((_, Err(e))) => {
                        let key: String = e.chars().take(120).collect();
                        *errors.entry(key).or_default() += 1;
                    }
                    None => break,
                }
                got += 1;
            }
        }
        placed = step;
        let setup_s = t_setup.elapsed().as_secs_f64();
        let failed = placed - established;
        if !o.plain {
            println!(
                "{:<22} calls {step:>5}: {placed} placed, {established} with media, {failed} failed, set up in {setup_s:.1} s",
                o.label
            );
            if let Some(a) = ctx.first_answer.borrow_mut().take() {
                eprintln!(
                    "relay-load {}: first SDP answer:\n{}",
                    o.label,
                    a.trim_end()
                );
            }
            for (e, n) in &errors {
                println!("{:<22}   setup failed x{n}: {e}", o.label);
            }
            errors.clear();
        }
        if step < o.measure_from && !o.measure_also.contains(&step) {
            // Set up only: an earlier ramp measured this step passing.
            if failed * 100 > placed {
                limited_by = "setup";
                break;
            }
            best = Some(step);
            assumed = true;
            continue;
        }
        tokio::time::sleep(o.warmup).await;

        // The measurement window.
        let active = established as u64 - ctx.ended.get();
        let r0 = procfs::tree_ticks(&o.pids);
        let l0 = procfs::tree_ticks(&load_pids);
        let g0 = procfs::process_ticks(me);
        let c0 = procfs::core_busy_ticks(o.relay_core);
        let k0 = procfs::core_busy_ticks(o.load_core);
        let d0 = procfs::udp_rcvbuf_errors();
        let tot0 = engine.borrow().totals.clone();
        let t0 = realtime_ns();
        let w0 = Instant::now();
        engine
            .borrow_mut()
            .open_window(t0, t0 + o.duration.as_nanos() as u64);
        tokio::time::sleep(o.duration).await;
        let el = w0.elapsed().as_secs_f64();
        let r1 = procfs::tree_ticks(&o.pids);
        let l1 = procfs::tree_ticks(&load_pids);
        let g1 = procfs::process_ticks(me);
        let c1 = procfs::core_busy_ticks(o.relay_core);
        let k1 = procfs::core_busy_ticks(o.load_core);
        tokio::time::sleep(o.grace).await;
        let d1 = procfs::udp_rcvbuf_errors();
        let w = engine.borrow_mut().take_window().expect("window");
        let tot1 = engine.borrow().totals.clone();

        let lost = w.sent.saturating_sub(w.received);
        let loss = pct(lost, w.sent);
        let relayed = w.sent + w.received;
        let relay_s = r1.saturating_sub(r0) as f64 / hz;
        let us_per_pkt = if relayed > 0 && !o.pids.is_empty() {
            relay_s * 1e6 / relayed as f64
        } else {
            0.0
        };
        let p50 = w.one_way.quantile_us(0.50);
        let p99 = w.one_way.quantile_us(0.99);
        let pass =
            w.sent > 0 && loss < o.loss_limit && p99 < o.p99_limit_us && failed * 100 <= placed;
        let relay_pct = 100.0 * relay_s / el;
        let core_pct = 100.0 * c1.saturating_sub(c0) as f64 / hz / el;
        let load_core_pct = 100.0 * k1.saturating_sub(k0) as f64 / hz / el;
        let load_pct = 100.0 * l1.saturating_sub(l0) as f64 / hz / el;
        let gen_pct = 100.0 * g1.saturating_sub(g0) as f64 / hz / el;
        let late_p99 = w.send_late.quantile_us(0.99);
        let srtp_err = tot1.srtp_errors - tot0.srtp_errors;
        // The generator's side is the bottleneck rather than the relay when
        // the load processes (generator, echo, UAS) nearly fill their core
        // or the generator sends late: a quarter of a packet interval at
        // p99, or stalls of a whole interval adding up to 1% of the window
        // (a rare stall of the whole machine is not the generator's).
        let skips = tot1.wheel_skips - tot0.wheel_skips;
        let load_bound = load_pct > 90.0
            || late_p99 > 5000.0
            || skips as f64 > o.duration.as_millis() as f64 / 100.0;
        if pass {
            best = Some(step);
            assumed = false;
        }
        let profiles: Vec<String> = tot1
            .profiles
            .iter()
            .map(|(k, v)| format!("{}:{v}", k.replace("Some(", "").replace(')', "")))
            .collect();
        println!(
            "{:<22} calls {:>5} (media {:>5}) | pkts sent {:>7} back {:>7} loss {:>7.3}% | one-way us p50 {:>6.0} p99 {:>6.0} max {:>7.0} (out p99 {:.0}, back p99 {:.0}) | relay CPU {:>5.1}% {:>6.2} us/pkt, core {} busy {:>5.1}% | load core {} {:>5.1}% (gen {:.1}%, load procs {:.1}%), send late p99 {:.0} us | udp drops {} srtp err {} | {}{}",
            o.label,
            step,
            active,
            w.sent,
            w.received,
            loss,
            p50,
            p99,
            w.one_way.max_us(),
            w.leg_out.quantile_us(0.99),
            w.leg_back.quantile_us(0.99),
            relay_pct,
            us_per_pkt,
            o.relay_core,
            core_pct,
            o.load_core,
            load_core_pct,
            gen_pct,
            load_pct,
            late_p99,
            d1.saturating_sub(d0),
            srtp_err,
            if pass { "PASS" } else { "FAIL" },
            if load_bound { " (load-bound: the generator side saturated)" } else { "" }
        );
        println!(
            "RESULT label={} mode={mode} calls={step} media={active} setup_failed={failed} setup_s={setup_s:.2} sent={} received={} loss_pct={loss:.4} p50_us={p50:.0} p99_us={p99:.0} max_us={:.0} mean_us={:.1} out_p99_us={:.0} back_p99_us={:.0} unstamped={} relay_cpu_s={relay_s:.3} relay_cpu_pct={relay_pct:.1} relay_us_per_pkt={us_per_pkt:.3} relay_core_busy_pct={core_pct:.1} load_core_busy_pct={load_core_pct:.1} gen_cpu_pct={gen_pct:.1} load_cpu_pct={load_pct:.1} send_late_p99_us={late_p99:.0} udp_drops={} srtp_errors={srtp_err} lost_conns={} ended={} wheel_skips={} profiles={} load_bound={} pass={}",
            o.label,
            w.sent,
            w.received,
            w.one_way.max_us(),
            w.one_way.mean_us(),
            w.leg_out.quantile_us(0.99),
            w.leg_back.quantile_us(0.99),
            w.unstamped,
            d1.saturating_sub(d0),
            ctx.lost.get(),
            ctx.ended.get(),
            skips,
            if profiles.is_empty() { "-".to_string() } else { profiles.join(",") },
            u8::from(load_bound),
            u8::from(pass)
        );
        if !pass && limited_by == "steps" {
            limited_by = if load_bound { "load" } else { "relay" };
        }
        if !pass && !o.keep_going {
            break;
        }
    }
    println!(
        "RESULT_MAX label={} mode={mode} max_calls={} limited_by={limited_by} measured_from={} assumed={}",
        o.label,
        best.map(|b| b.to_string()).unwrap_or_else(|| "0".into()),
        o.measure_from,
        u8::from(assumed)
    );
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        for b in browsers {
            let _ = b.await;
        }
    })
    .await;
    let t = engine.borrow().totals.clone();
    eprintln!(
        "relay-load {}: totals sent {} received {} srtp errors {} rtcp {} unknown {} stun answered {} stun errors {} dtls failures {}",
        o.label, t.sent, t.received, t.srtp_errors, t.rtcp, t.unknown, t.stun_requests_answered, t.stun_errors, t.dtls_failures
    );
}

fn write_users() {
    use std::fmt::Write as _;
    let a = Args::parse_after("relay-load write-users", USAGE, &[], 2);
    let dir: std::path::PathBuf = a.req::<String>("dir").into();
    let realm: String = a.or("realm", "127.0.0.1".to_string());
    let prefix: String = a.or("prefix", "u".to_string());
    let first: u64 = a.or("first", 10000);
    let count: u64 = a.req("count");
    let pw_prefix: String = a.or("password-prefix", "pw-".to_string());
    let mut users: Vec<(String, String)> = Vec::new();
    if let Some(extra) = a.get("extra") {
        for e in extra.split(',') {
            let (n, p) = e
                .split_once(':')
                .unwrap_or_else(|| a.die("--extra NAME:PASSWORD[,NAME:PASSWORD]"));
            users.push((n.into(), p.into()));
        }
    }
    for i in 0..count {
        let name = format!("{prefix}{}", first + i);
        let pw = format!("{pw_prefix}{name}");
        users.push((name, pw));
    }
    let mut toml = String::new();
    let mut ht = String::from(
        "id(int,auto) key_name(string) key_type(int) value_type(int) key_value(string) expires(int) \n",
    );
    for (i, (name, pw)) in users.iter().enumerate() {
        if pw.len() < 8 {
            a.die(&format!("password of {name} is shorter than 8 characters"));
        }
        let _ = writeln!(toml, "[[users]]\nname = \"{name}\"\npassword = \"{pw}\"\n");
        let ha1 = sip::md5_hex(&format!("{name}:{realm}:{pw}"));
        // ':' separates db_text columns; key_type 0 = single value,
        // value_type 0 = string, expires 0 = never.
        let _ = writeln!(ht, "{}:{name}:0:0:{ha1}:0", i + 1);
    }
    let db = dir.join("db");
    std::fs::create_dir_all(&db).unwrap_or_else(|e| a.die(&format!("{}: {e}", db.display())));
    let write = |p: std::path::PathBuf, s: &str| {
        std::fs::write(&p, s).unwrap_or_else(|e| a.die(&format!("{}: {e}", p.display())))
    };
    write(dir.join("users.toml"), &toml);
    write(db.join("htable"), &ht);
    write(
        db.join("version"),
        "id(int,auto) table_name(string) table_version(int) \n0:version:1\n0:htable:2\n",
    );
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("write-users") {
        write_users();
        return;
    }
    let a = Args::parse("relay-load", USAGE, &["plain", "no-bundle", "keep-going"]);
    let o = parse_opts(&a);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, run(o));
}
