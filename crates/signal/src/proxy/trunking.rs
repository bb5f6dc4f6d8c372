//! The core's trunk side: outbound routing to trunks, inbound calls to
//! DIDs, digest authentication toward a trunk (with the CSeq offset it
//! leaves in the dialog), trunk registration, ending calls with BYE (media
//! timeout, hang-up), and call records.

use super::*;
use crate::trunk::{Trunk, TrunkCredentials};
use sip::digest::{self, Secret};

const USER_AGENT: &str = concat!("callgate/", env!("CARGO_PKG_VERSION"));

/// Registration client state of one trunk.
pub(super) struct TrunkReg {
    call_id: String,
    from_tag: String,
    cseq: u32,
    state: RegistrationState,
    /// When the next REGISTER is due; `None`: at once.
    next_at: Option<Instant>,
    in_flight: bool,
    failures: u32,
    expiry: u32,
    /// What the registration was made for; a change re-registers.
    signature: String,
}

/// A call from a trusted trunk to one of our DIDs.
pub(super) struct Inbound {
    trunk: String,
    number: String,
    user: String,
}

fn reg_signature(t: &Trunk, c: &TrunkCredentials) -> String {
    format!(
        "{}|{}|{}|{}|{:?}|{}|{}",
        t.addr,
        t.transport.param(),
        t.host,
        t.from_host(),
        t.local_ip,
        c.digest_username(),
        c.password
    )
}

impl Core {
    /// Replaces the trunks and DIDs. Registrations of trunks that remain
    /// unchanged keep their state; new or changed ones register at the next
    /// `on_timer`.
    pub fn set_dialplan(&mut self, dialplan: Dialplan) {
        let mut regs = HashMap::new();
        for t in &dialplan.trunks {
            let (Some(expiry), Some(creds)) = (t.register_expiry, &t.credentials) else {
                continue;
            };
            let signature = reg_signature(t, creds);
            let reg = match self.trunk_regs.remove(&t.name) {
                Some(mut r) => {
                    if r.signature != signature || r.expiry != expiry {
                        r.signature = signature;
                        r.expiry = expiry;
                        r.next_at = None;
                        r.failures = 0;
                        r.cseq += 1;
                    }
                    r
                }
                None => TrunkReg {
                    call_id: format!("{:016x}{:016x}@callgate", self.random(), self.random()),
                    from_tag: self.new_tag(),
                    cseq: 0,
                    state: RegistrationState::Registering,
                    next_at: None,
                    in_flight: false,
                    failures: 0,
                    expiry,
                    signature,
                },
            };
            regs.insert(t.name.clone(), reg);
        }
        self.trunk_regs = regs;
        self.dialplan = dialplan;
    }

    pub fn dialplan(&self) -> &Dialplan {
        &self.dialplan
    }

    /// Live state of every trunk.
    pub fn trunk_status(&self) -> Vec<TrunkStatus> {
        self.dialplan
            .trunks
            .iter()
            .map(|t| TrunkStatus {
                name: t.name.clone(),
                registration: self
                    .trunk_regs
                    .get(&t.name)
                    .map_or(RegistrationState::Disabled, |r| r.state.clone()),
                active_calls: self.trunk_calls(&t.name),
            })
            .collect()
    }

    /// Calls a user takes part in, as caller or callee.
    pub(super) fn user_calls(&self, user: &str) -> u32 {
        self.calls
            .values()
            .filter(|c| {
                c.caller_user.as_deref() == Some(user) || c.callee_user.as_deref() == Some(user)
            })
            .count() as u32
    }

    fn trunk_calls(&self, name: &str) -> u32 {
        self.calls
            .values()
            .filter(|c| c.trunk.as_deref() == Some(name))
            .count() as u32
    }

    /// The call list with each call's media counters.
    pub fn calls_with_media(&mut self) -> Vec<CallInfo> {
        let mut v = self.calls();
        if let Some(hook) = self.media.as_mut() {
            for c in &mut v {
                c.media = hook.stats(&media_session(&(c.call_id.clone(), c.from_tag.clone())));
            }
        }
        v
    }

    // ----- outbound ------------------------------------------------------

    /// Sends an authenticated user's INVITE for `number` (not a local user)
    /// to the first trunk whose patterns match and that has room.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn route_to_trunk(
        &mut self,
        id: TransactionId,
        src: &Source,
        mut msg: Message,
        number: &str,
        who: &str,
        now: Instant,
        unix: u64,
    ) {
        let candidates: Vec<Trunk> = self.dialplan.routes(number).cloned().collect();
        if candidates.is_empty() {
            self.reply(id, 404, "Not Found", &[], now, unix);
            return;
        }
        let caller = self.users.find(who).cloned();
        if !caller.as_ref().is_none_or(|u| u.scope.allows(number)) {
            self.reply(id, 403, "Destination Not Allowed", &[], now, unix);
            return;
        }
        if caller
            .as_ref()
            .and_then(|u| u.max_calls)
            .is_some_and(|m| self.user_calls(who) >= m)
        {
            self.reply(id, 403, "Call Limit Reached", &[], now, unix);
            return;
        }
        let Some(t) = candidates
            .into_iter()
            .find(|t| t.max_calls.is_none_or(|m| self.trunk_calls(&t.name) < m))
        else {
            let retry = ("Retry-After", "30".to_owned());
            self.reply(id, 503, "Trunk Busy", &[retry], now, unix);
            return;
        };
        let dialled = t.normalize(number);
        let from = msg.from().ok();
        let tag = from.as_ref().and_then(|f| f.tag()).unwrap_or("").to_owned();
        let display = from
            .as_ref()
            .and_then(|f| f.display_name_str())
            .map(|d| d.replace(['"', '\\', '\r', '\n'], ""))
            .filter(|d| !d.is_empty());
        let from_user = from
            .as_ref()
            .and_then(|f| f.uri().user().map(str::to_owned))
            .unwrap_or_else(|| who.to_owned());
        let presented = match &t.caller_id {
            crate::trunk::CallerId::Keep => from_user,
            crate::trunk::CallerId::User => caller
                .as_ref()
                .and_then(|u| u.caller_id.clone().or_else(|| u.extension.clone()))
                .unwrap_or_else(|| who.to_owned()),
            crate::trunk::CallerId::Fixed(n) => n.clone(),
        };
        let display = display.map(|d| format!("\"{d}\" ")).unwrap_or_default();
        let from_value = format!("{display}<sip:{presented}@{}>;tag={tag}", t.from_host());
        let to_value = format!("<sip:{dialled}@{}>", t.hostport());
        let edits = msg
            .set_request_uri(&t.request_uri(&dialled))
            .and_then(|_| msg.set_header(HeaderName::From, &from_value))
            .and_then(|_| msg.set_header(HeaderName::To, &to_value));
        if edits.is_err() {
            self.reply(id, 500, "Could Not Build Trunk Request", &[], now, unix);
            return;
        }
        // Our own credentials are consumed here (RFC 3261 §22.3).
        msg.remove_headers(HeaderName::ProxyAuthorization);
        msg.remove_headers(HeaderName::Authorization);
        self.next_call = Some(CallMeta {
            direction: Some(Direction::Outbound),
            dialled: number.to_owned(),
            caller_user: Some(who.to_owned()),
            callee_user: None,
            trunk: Some(t.name.clone()),
        });
        let target = (None, Dest::Addr(t.transport, t.addr), Vec::new());
        self.forward(id, src, msg, vec![target], now, unix);
    }

    /// Whether a 401/407 on branch `cid` can be answered with a trunk's
    /// credentials (a trunk branch, not yet answered, still wanted).
    pub(super) fn can_answer_trunk_challenge(&self, pid: u64, cid: TransactionId) -> bool {
        let Some(c) = self.clients.get(&cid) else {
            return false;
        };
        let has_credentials = c
            .trunk
            .as_deref()
            .and_then(|t| self.dialplan.trunk(t))
            .is_some_and(|t| t.credentials.is_some());
        let wanted = self.proxies.get(&pid).is_some_and(|p| {
            !p.final_sent
                && p.branches
                    .iter()
                    .any(|b| b.client == cid && !b.cancelled && b.final_status.is_none())
        });
        !c.auth_tried && has_credentials && wanted
    }

    /// Answers a trunk's 401/407 on a branch toward it: the request goes
    /// again with credentials and the next CSeq. Returns whether it did.
    pub(super) fn retry_with_trunk_auth(
        &mut self,
        pid: u64,
        cid: TransactionId,
        resp: &Message,
        now: Instant,
        unix: u64,
    ) -> bool {
        let Some(c) = self.clients.get(&cid) else {
            return false;
        };
        if c.auth_tried {
            return false;
        }
        let Some(trunk) = c.trunk.clone() else {
            return false;
        };
        let cancelled = self.proxies.get(&pid).is_none_or(|p| {
            p.final_sent
                || p.branches
                    .iter()
                    .any(|b| b.client == cid && (b.cancelled || b.final_status.is_some()))
        });
        if cancelled {
            return false;
        }
        let Some(creds) = self
            .dialplan
            .trunk(&trunk)
            .and_then(|t| t.credentials.clone())
        else {
            return false;
        };
        let dest = c.dest;
        let mut req = c.request.clone();
        let (Some(method), Some(uri), Ok(cseq)) = (
            req.method().map(|m| m.as_str().to_owned()),
            req.request_uri().map(|u| u.as_str().to_owned()),
            req.cseq().map(|c| c.seq),
        ) else {
            return false;
        };
        let Some((header, value)) = self.authorization(&creds, resp, &method, &uri) else {
            return false;
        };
        let Some(old_branch) = req.top_via_branch().map(str::to_owned) else {
            return false;
        };
        // Same loop hash, new branch: this is the same request at this hop.
        let stem = old_branch
            .rsplit_once('-')
            .map_or(old_branch.as_str(), |(s, _)| s);
        let branch = format!("{stem}-{:x}", self.random());
        let Some(via) = req.top_via().ok().map(|v| via_text(&v)) else {
            return false;
        };
        let via = via.replace(&old_branch, &branch);
        req.remove_headers(HeaderName::Authorization);
        req.remove_headers(HeaderName::ProxyAuthorization);
        let edits = req
            .set_header(HeaderName::CSeq, &format!("{} {method}", cseq + 1))
            .and_then(|_| req.pop_via().map(|_| ()))
            .and_then(|_| req.prepend_via(&via))
            .and_then(|_| req.add_header(header, &value));
        if edits.is_err() {
            return false;
        }
        let bytes = req.to_bytes();
        let reliable = dest.is_reliable();
        let key = ClientKey::new(branch, tx::Method::parse(&method));
        let Ok(new) = self.table.start_client(key, bytes.clone(), reliable, now) else {
            return false;
        };
        let sent = Message::parse(bytes, &sip::Limits::unbounded()).unwrap_or(req);
        self.clients.insert(
            new,
            ClientCtx {
                dest,
                request: sent,
                proxy: Some(pid),
                trunk: Some(trunk),
                auth_tried: true,
                register: None,
                ping: None,
            },
        );
        if let Some(p) = self.proxies.get_mut(&pid) {
            if let Some(b) = p.branches.iter_mut().find(|b| b.client == cid) {
                b.client = new;
                b.provisional = false;
            }
            let call = p.call.clone().or_else(|| self.caller_call_key(resp));
            if let Some(call) = call.and_then(|k| self.calls.get_mut(&k)) {
                call.cseq_offset += 1;
            }
        }
        self.drain(None, now, unix);
        true
    }

    /// The `(header, value)` answering the challenge in `resp`.
    fn authorization(
        &mut self,
        creds: &TrunkCredentials,
        resp: &Message,
        method: &str,
        uri: &str,
    ) -> Option<(&'static str, String)> {
        let (challenge, header) = if resp.status() == Some(407) {
            (HeaderName::ProxyAuthenticate, "Proxy-Authorization")
        } else {
            (HeaderName::WwwAuthenticate, "Authorization")
        };
        let values: Vec<&str> = resp
            .headers(challenge)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .collect();
        let ch = digest::select_challenge(values).ok()?;
        let cnonce = format!("{:016x}", self.random());
        let value = digest::authorize(
            &ch,
            method,
            uri,
            creds.digest_username(),
            Secret::Password(&creds.password),
            &cnonce,
            1,
        )
        .ok()?;
        Some((header, value))
    }

    /// The call a request from its caller belongs to.
    pub(super) fn caller_call_key(&self, msg: &Message) -> Option<(String, String)> {
        let key = (
            msg.call_id()?.to_owned(),
            msg.from().ok()?.tag()?.to_owned(),
        );
        self.calls.contains_key(&key).then_some(key)
    }

    /// Shifts a caller's in-dialog CSeq by the call's offset.
    pub(super) fn apply_cseq_offset(&self, key: &(String, String), msg: &mut Message) {
        let Some(offset) = self.calls.get(key).map(|c| c.cseq_offset) else {
            return;
        };
        if offset == 0 {
            return;
        }
        if let Ok(c) = msg.cseq() {
            let value = format!("{} {}", c.seq.wrapping_add(offset), c.method.as_str());
            let _ = msg.set_header(HeaderName::CSeq, &value);
        }
    }

    /// A response relayed upstream carries the CSeq of the request it
    /// answers there, whatever number the branch used.
    pub(super) fn restore_cseq(&self, server: TransactionId, cid: TransactionId, m: &mut Message) {
        let (Some(s), Some(c)) = (self.servers.get(&server), self.clients.get(&cid)) else {
            return;
        };
        let (Ok(up), Ok(down)) = (s.request.cseq(), c.request.cseq()) else {
            return;
        };
        if up.seq != down.seq {
            let value = format!("{} {}", up.seq, up.method.as_str());
            let _ = m.set_header(HeaderName::CSeq, &value);
        }
    }

    // ----- inbound -------------------------------------------------------

    /// An INVITE from a trunk's trusted address (or the trunk itself) for
    /// one of our DIDs: the Request-URI user (providers put the DID there)
    /// or, for a registered trunk calling our Contact, the To user.
    pub(super) fn inbound_did(&self, src: &Source, msg: &Message) -> Option<Inbound> {
        if matches!(src.transport, Transport::Ws | Transport::Wss) {
            return None;
        }
        let ip = src.addr.ip().to_canonical();
        let trunk = self
            .dialplan
            .trunks
            .iter()
            .find(|t| t.trusts(ip) || t.addr.ip() == ip)?;
        let ruri_user = msg.request_uri().and_then(|u| u.user().map(str::to_owned));
        let to_user = msg
            .to()
            .ok()
            .and_then(|t| t.uri().user().map(str::to_owned));
        [ruri_user, to_user].into_iter().flatten().find_map(|n| {
            self.dialplan.did_user(&n).map(|u| Inbound {
                trunk: trunk.name.clone(),
                number: n.clone(),
                user: u.to_owned(),
            })
        })
    }

    /// Forks a trunk's call to every registration of the DID's user.
    pub(super) fn inbound_from_trunk(
        &mut self,
        id: TransactionId,
        src: Source,
        msg: Message,
        inbound: Inbound,
        now: Instant,
        unix: u64,
    ) {
        let max = self
            .dialplan
            .trunk(&inbound.trunk)
            .and_then(|t| t.max_calls);
        if max.is_some_and(|m| self.trunk_calls(&inbound.trunk) >= m) {
            let retry = ("Retry-After", "30".to_owned());
            self.reply(id, 503, "Trunk Busy", &[retry], now, unix);
            return;
        }
        let Some(user) = self.users.find(&inbound.user).cloned() else {
            self.reply(id, 404, "Not Found", &[], now, unix);
            return;
        };
        if user
            .max_calls
            .is_some_and(|m| self.user_calls(&user.username) >= m)
        {
            self.reply(id, 486, "Busy Here", &[], now, unix);
            return;
        }
        let aor = format!("sip:{}@{}", user.username, self.cfg.domain);
        let targets: Vec<(Option<String>, Dest, Vec<String>)> = self
            .location
            .lookup(&aor, unix)
            .into_iter()
            .filter(|b| self.binding_reachable(b))
            .filter_map(|b| {
                self.binding_dest(b)
                    .map(|d| (Some(b.contact.clone()), d, b.path.clone()))
            })
            .collect();
        if targets.is_empty() {
            self.reply(id, 480, "Temporarily Unavailable", &[], now, unix);
            return;
        }
        self.next_call = Some(CallMeta {
            direction: Some(Direction::Inbound),
            dialled: inbound.number,
            caller_user: None,
            callee_user: Some(user.username.clone()),
            trunk: Some(inbound.trunk),
        });
        self.forward(id, &src, msg, targets, now, unix);
    }

    // ----- ending calls --------------------------------------------------

    /// Removes a call, releases its media and reports its record.
    pub(super) fn finish_call(
        &mut self,
        key: &(String, String),
        disposition: Disposition,
        reason: &str,
        unix: u64,
    ) {
        let Some(c) = self.calls.remove(key) else {
            return;
        };
        let media = self
            .media
            .as_mut()
            .and_then(|m| m.stats(&media_session(key)));
        self.end_media(key);
        let party = |uri: &str| {
            Uri::parse_str(uri)
                .ok()
                .and_then(|u| u.user().map(str::to_owned))
                .unwrap_or_else(|| uri.to_owned())
        };
        let answered = c
            .answered_unix
            .filter(|_| disposition == Disposition::Answered);
        let disposition = if disposition == Disposition::Answered && answered.is_none() {
            Disposition::Cancelled
        } else {
            disposition
        };
        self.out.push_back(Output::CallEnded(CallRecord {
            call_id: c.call_id,
            started_unix: c.started_unix,
            answered_unix: answered,
            ended_unix: unix.max(c.started_unix),
            caller: party(&c.from),
            callee: c.dialled,
            caller_user: c.caller_user,
            callee_user: c.callee_user,
            direction: c.direction,
            disposition,
            trunk: c.trunk,
            reason: reason.to_owned(),
            caller_media: media.map(|m| m.0),
            callee_media: media.map(|m| m.1),
        }));
    }

    /// The relay saw no media on a call: it is ended with a BYE to each
    /// party. Returns whether the session named a call that was up.
    pub fn media_timeout(&mut self, session: &str, now: Instant, unix: u64) -> bool {
        let key = self
            .calls
            .keys()
            .find(|k| media_session(k) == session)
            .cloned();
        match key {
            Some(key) => self.hangup_key(&key, "media timeout", now, unix),
            None => false,
        }
    }

    /// Ends a call from the gateway: an answered one with a BYE to both
    /// parties, a ringing one by cancelling its branches and answering the
    /// caller 487. Returns false when no call has that Call-ID.
    pub fn hangup(&mut self, call_id: &str, reason: &str, now: Instant, unix: u64) -> bool {
        let Some(key) = self.calls.keys().find(|k| k.0 == call_id).cloned() else {
            return false;
        };
        if self
            .calls
            .get(&key)
            .is_some_and(|c| c.answered_unix.is_some())
        {
            return self.hangup_key(&key, reason, now, unix);
        }
        let pid = self
            .proxies
            .iter()
            .find(|(_, p)| p.call.as_ref() == Some(&key) && !p.final_sent)
            .map(|(pid, _)| *pid);
        let Some(pid) = pid else {
            return false;
        };
        self.cancel_branches(pid, None, now, unix);
        if let Some(p) = self.proxies.get_mut(&pid) {
            // The caller is told now; the branches' 487s are absorbed.
            p.final_sent = true;
            let server = p.server;
            p.call = None;
            self.finish_call(&key, Disposition::Cancelled, reason, unix);
            self.reply(server, 487, "Request Terminated", &[], now, unix);
        }
        true
    }

    /// Ends every call (shutdown after the drain time).
    pub fn hangup_all(&mut self, reason: &str, now: Instant, unix: u64) -> usize {
        let ids: Vec<String> = self.calls.keys().map(|k| k.0.clone()).collect();
        ids.iter()
            .filter(|id| self.hangup(id, reason, now, unix))
            .count()
    }

    /// Stops taking new calls (a graceful stop): new INVITEs get 503 with
    /// Retry-After; calls in progress and everything else go on.
    pub fn set_draining(&mut self, draining: bool) {
        self.draining = draining;
    }

    /// Number of calls in the call list.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// Forced unregister: the binding of `aor` with `contact`, or all of
    /// them. Returns how many were removed (each is also reported for the
    /// store).
    pub fn unregister(&mut self, aor: &str, contact: Option<&str>) -> usize {
        let gone = match contact {
            Some(c) => self.location.remove_contact(aor, c).into_iter().collect(),
            None => self.location.remove_aor(aor),
        };
        let n = gone.len();
        for b in gone {
            self.out.push_back(Output::Binding(Change::Remove(b)));
        }
        n
    }

    fn hangup_key(
        &mut self,
        key: &(String, String),
        reason: &str,
        now: Instant,
        unix: u64,
    ) -> bool {
        let Some(c) = self.calls.get(key).cloned() else {
            return false;
        };
        if c.answered_unix.is_none() {
            return false;
        }
        let d = &c.dialog;
        let to_hdr = d.to_hdr.clone().unwrap_or_default();
        // The callee's route set: Record-Route entries nearer the callee
        // than ours (listed first, nearest last); the caller's: those after
        // ours. Usually both are empty.
        let ours: Vec<bool> = c
            .route_set
            .iter()
            .map(|r| Uri::parse_str(r).is_ok_and(|u| self.is_local_route(&u)))
            .collect();
        let first = ours.iter().position(|&o| o);
        let last = ours.iter().rposition(|&o| o);
        let (toward_callee, toward_caller): (Vec<String>, Vec<String>) = match (first, last) {
            (Some(f), Some(l)) => (
                c.route_set[..f].iter().rev().cloned().collect(),
                c.route_set[l + 1..].to_vec(),
            ),
            _ => (Vec::new(), Vec::new()),
        };
        let text = reason.replace(['"', '\\', '\r', '\n'], "");
        let reason_hdr = format!("SIP;cause=200;text=\"{text}\"");
        if let (Some(dest), Some(contact)) = (d.callee_dest, d.callee_contact.clone()) {
            let seq = c.cseq_caller.wrapping_add(c.cseq_offset).wrapping_add(1);
            self.send_bye(
                dest,
                &contact,
                &d.from_hdr,
                &to_hdr,
                &c.call_id,
                seq,
                &toward_callee,
                &reason_hdr,
                now,
            );
        }
        if let (Some(dest), Some(contact)) = (d.caller_dest, d.caller_contact.clone()) {
            let seq = c.cseq_callee.max(1).wrapping_add(1);
            self.send_bye(
                dest,
                &contact,
                &to_hdr,
                &d.from_hdr,
                &c.call_id,
                seq,
                &toward_caller,
                &reason_hdr,
                now,
            );
        }
        self.finish_call(key, Disposition::Answered, reason, unix);
        self.drain(None, now, unix);
        true
    }

    fn is_local_route(&self, uri: &Uri<'_>) -> bool {
        let any = self
            .cfg
            .listeners
            .first()
            .map_or(SocketAddr::from(([127, 0, 0, 1], 5060)), |(_, a)| *a);
        self.is_local_uri(uri, any)
    }

    #[allow(clippy::too_many_arguments)]
    fn send_bye(
        &mut self,
        dest: Dest,
        ruri: &str,
        from: &str,
        to: &str,
        call_id: &str,
        seq: u32,
        routes: &[String],
        reason: &str,
        now: Instant,
    ) {
        let transport = match dest {
            Dest::Addr(t, _) => t,
            Dest::Flow(f) => self
                .location
                .all()
                .find(|b| b.flow == Some(f))
                .map_or(Transport::Wss, |b| b.transport),
        };
        let fallback = self
            .cfg
            .listeners
            .first()
            .map_or(IpAddr::from([127, 0, 0, 1]), |(_, a)| a.ip());
        let branch = format!("{BRANCH_PREFIX}-b-{:x}", self.random());
        let via = format!(
            "SIP/2.0/{} {};branch={branch};rport",
            transport.via_token(),
            self.local_hostport(transport, fallback)
        );
        let mut b = RequestBuilder::new(Method::Bye, ruri)
            .header("Via", &via)
            .header("Max-Forwards", "70")
            .header("From", from)
            .header("To", to)
            .header("Call-ID", call_id)
            .header("CSeq", &format!("{seq} BYE"))
            .header("Reason", reason)
            .header("User-Agent", USER_AGENT);
        for r in routes {
            b = b.header("Route", &format!("<{r}>"));
        }
        let Ok(bytes) = b.to_bytes().map(Bytes::from) else {
            return;
        };
        let reliable = dest.is_reliable();
        let key = ClientKey::new(branch, tx::Method::Bye);
        if let Ok(id) = self.table.start_client(key, bytes.clone(), reliable, now) {
            if let Ok(m) = Message::parse(bytes, &sip::Limits::unbounded()) {
                self.clients.insert(
                    id,
                    ClientCtx {
                        dest,
                        request: m,
                        proxy: None,
                        trunk: None,
                        auth_tried: false,
                        register: None,
                        ping: None,
                    },
                );
            }
        }
    }

    /// Our `host:port` as a trunk reaches us, for Via and Contact.
    fn trunk_local_hostport(&self, t: &Trunk) -> String {
        let fallback = t.local_ip.unwrap_or_else(|| {
            self.cfg
                .listeners
                .iter()
                .find(|(tr, _)| *tr == t.transport)
                .map_or(IpAddr::from([127, 0, 0, 1]), |(_, a)| a.ip())
        });
        self.local_hostport(t.transport, fallback)
    }

    /// Sends an OPTIONS to a trunk; its answer (or timeout) comes out as
    /// [`Output::PingResult`] with the returned id. `None`: no such trunk.
    pub fn ping_trunk(&mut self, name: &str, now: Instant, unix: u64) -> Option<u64> {
        let t = self.dialplan.trunk(name)?.clone();
        let id = self.random();
        let branch = format!("{BRANCH_PREFIX}-p-{:x}", self.random());
        let (tag, call_id) = (self.random(), self.random());
        let local = self.trunk_local_hostport(&t);
        let tparam = t.transport.uri_param();
        let ruri = format!("sip:{}{tparam}", t.hostport());
        let bytes = RequestBuilder::new(Method::Options, &ruri)
            .header(
                "Via",
                &format!(
                    "SIP/2.0/{} {local};branch={branch};rport",
                    t.transport.via_token()
                ),
            )
            .header("Max-Forwards", "70")
            .header(
                "From",
                &format!("<sip:ping@{}>;tag={tag:x}", self.cfg.domain),
            )
            .header("To", &format!("<{ruri}>"))
            .header("Call-ID", &format!("{call_id:016x}@callgate"))
            .header("CSeq", "1 OPTIONS")
            .header("User-Agent", USER_AGENT)
            .to_bytes()
            .ok()
            .map(Bytes::from)?;
        let key = ClientKey::new(branch, tx::Method::Options);
        let cid = self
            .table
            .start_client(key, bytes.clone(), t.transport.is_reliable(), now)
            .ok()?;
        let request = Message::parse(bytes, &sip::Limits::unbounded()).ok()?;
        self.clients.insert(
            cid,
            ClientCtx {
                dest: Dest::Addr(t.transport, t.addr),
                request,
                proxy: None,
                trunk: Some(name.to_owned()),
                auth_tried: false,
                register: None,
                ping: Some((id, now)),
            },
        );
        self.drain(None, now, unix);
        Some(id)
    }

    // ----- registration --------------------------------------------------

    /// When the next trunk REGISTER is due.
    pub(super) fn next_registration(&self) -> Option<Instant> {
        self.trunk_regs
            .values()
            .filter(|r| !r.in_flight)
            .filter_map(|r| r.next_at.or(self.last_now))
            .min()
    }

    pub(super) fn registration_timers(&mut self, now: Instant, unix: u64) {
        let due: Vec<String> = self
            .trunk_regs
            .iter()
            .filter(|(_, r)| !r.in_flight && r.next_at.is_none_or(|t| t <= now))
            .map(|(n, _)| n.clone())
            .collect();
        for name in due {
            self.send_register(&name, None, now, unix);
        }
    }

    fn send_register(
        &mut self,
        name: &str,
        auth: Option<(&'static str, String)>,
        now: Instant,
        unix: u64,
    ) {
        let Some(t) = self.dialplan.trunk(name).cloned() else {
            return;
        };
        let Some(creds) = t.credentials.clone() else {
            return;
        };
        let branch = format!("{BRANCH_PREFIX}-r-{:x}", self.random());
        let Some(reg) = self.trunk_regs.get_mut(name) else {
            return;
        };
        reg.cseq += 1;
        let (call_id, tag, cseq, expiry) = (
            reg.call_id.clone(),
            reg.from_tag.clone(),
            reg.cseq,
            reg.expiry,
        );
        let local = self.trunk_local_hostport(&t);
        let tparam = t.transport.uri_param();
        let ruri = format!("sip:{}{tparam}", t.hostport());
        let aor = format!("sip:{}@{}", creds.username, t.from_host());
        let mut b = RequestBuilder::new(Method::Register, &ruri)
            .header(
                "Via",
                &format!(
                    "SIP/2.0/{} {local};branch={branch};rport",
                    t.transport.via_token()
                ),
            )
            .header("Max-Forwards", "70")
            .header("From", &format!("<{aor}>;tag={tag}"))
            .header("To", &format!("<{aor}>"))
            .header("Call-ID", &call_id)
            .header("CSeq", &format!("{cseq} REGISTER"))
            .header(
                "Contact",
                &format!("<sip:{}@{local}{tparam}>", creds.username),
            )
            .header("Expires", &expiry.to_string())
            .header("User-Agent", USER_AGENT);
        let auth_tried = auth.is_some();
        if let Some((h, v)) = &auth {
            b = b.header(h, v);
        }
        let Ok(bytes) = b.to_bytes().map(Bytes::from) else {
            return;
        };
        let key = ClientKey::new(branch, tx::Method::Register);
        let dest = Dest::Addr(t.transport, t.addr);
        match self
            .table
            .start_client(key, bytes.clone(), t.transport.is_reliable(), now)
        {
            Ok(id) => {
                if let Ok(m) = Message::parse(bytes, &sip::Limits::unbounded()) {
                    self.clients.insert(
                        id,
                        ClientCtx {
                            dest,
                            request: m,
                            proxy: None,
                            trunk: Some(name.to_owned()),
                            auth_tried,
                            register: Some(name.to_owned()),
                            ping: None,
                        },
                    );
                }
                if let Some(reg) = self.trunk_regs.get_mut(name) {
                    reg.in_flight = true;
                    if !matches!(reg.state, RegistrationState::Registered { .. }) {
                        reg.state = RegistrationState::Registering;
                    }
                }
                self.drain(None, now, unix);
            }
            Err(_) => {
                if let Some(reg) = self.trunk_regs.get_mut(name) {
                    reg.next_at = Some(now + Duration::from_secs(5));
                }
            }
        }
    }

    /// A final response (or a timeout, `msg` None) to a trunk REGISTER.
    pub(super) fn register_response(
        &mut self,
        name: &str,
        cid: TransactionId,
        status: u16,
        msg: Option<&Message>,
        now: Instant,
        unix: u64,
    ) {
        if status < 200 {
            return;
        }
        let Some(client) = self.clients.get_mut(&cid) else {
            return;
        };
        // A transaction answers once; a later timeout of it is moot.
        if client.register.take().is_none() {
            return;
        }
        let auth_tried = client.auth_tried;
        let Some(reg) = self.trunk_regs.get_mut(name) else {
            return;
        };
        reg.in_flight = false;
        match (status, msg) {
            (200..=299, m) => {
                let granted = m
                    .and_then(|m| granted_expiry(m, &reg.call_id))
                    .unwrap_or(reg.expiry)
                    .max(1);
                reg.state = RegistrationState::Registered {
                    expires_unix: unix + u64::from(granted),
                };
                reg.failures = 0;
                // Refresh well before expiry, RFC 3261 style.
                let refresh = if granted > 60 {
                    granted - granted / 5
                } else {
                    granted / 2
                };
                reg.next_at = Some(now + Duration::from_secs(u64::from(refresh.max(1))));
            }
            (423, Some(m)) => {
                let min = m
                    .header_str("Min-Expires")
                    .and_then(|v| v.trim().parse::<u32>().ok());
                match min {
                    Some(min) if min > reg.expiry && min <= 86_400 => {
                        reg.expiry = min;
                        reg.next_at = None;
                    }
                    _ => self.registration_failed(name, "423 Interval Too Brief", now),
                }
            }
            (401 | 407, Some(m)) if !auth_tried => {
                let creds = self
                    .dialplan
                    .trunk(name)
                    .and_then(|t| t.credentials.clone());
                let uri = self
                    .clients
                    .get(&cid)
                    .and_then(|c| c.request.request_uri().map(|u| u.as_str().to_owned()));
                let auth = match (creds, uri) {
                    (Some(c), Some(uri)) => self.authorization(&c, m, "REGISTER", &uri),
                    _ => None,
                };
                match auth {
                    Some(a) => self.send_register(name, Some(a), now, unix),
                    None => self.registration_failed(name, "challenge not answerable", now),
                }
            }
            (s, m) => {
                let reason = m
                    .and_then(|m| m.reason().map(|r| String::from_utf8_lossy(r).into_owned()))
                    .unwrap_or_else(|| {
                        if s == 408 {
                            "no answer".into()
                        } else {
                            "unreachable".into()
                        }
                    });
                self.registration_failed(name, &format!("{s} {reason}"), now);
            }
        }
    }

    fn registration_failed(&mut self, name: &str, reason: &str, now: Instant) {
        if let Some(reg) = self.trunk_regs.get_mut(name) {
            reg.failures += 1;
            reg.state = RegistrationState::Failed {
                reason: reason.to_owned(),
            };
            // 30 s, doubling, at most 10 minutes.
            let wait = 30u64 << reg.failures.min(5).saturating_sub(1);
            reg.next_at = Some(now + Duration::from_secs(wait.min(600)));
        }
    }
}

/// The lifetime a registrar granted: our Contact's `expires`, else the
/// Expires header.
fn granted_expiry(m: &Message, _call_id: &str) -> Option<u32> {
    let from_contact = match m.contacts().ok()? {
        sip::Contacts::List(list) => list
            .filter_map(Result::ok)
            .find_map(|c| c.expires().ok().flatten()),
        sip::Contacts::Wildcard => None,
    };
    from_contact.or_else(|| m.expires().ok().flatten())
}
