//! Trunks and DIDs: `/api/v1/trunks` and `/api/v1/dids`.
//!
//! A trunk is written and shown with the flat keys of a `[[trunks]]` table
//! of the config file ([`TrunkDef`]), so the file and the API take the same
//! document. The password is write-only: accepted on create and update,
//! shown only as `has_password`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

use crate::{check_token, parse_json, Api, ApiError, TrunkStatusView};

/// A trunk in the flat form of a `[[trunks]]` table of the config file and
/// of `POST /api/v1/trunks`; keys left out take the defaults below. It
/// mirrors [`store::TrunkConfig`]; [`TrunkDef::to_store`] converts and
/// checks it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrunkDef {
    /// Unique; letters, digits, `.`, `_` and `-`.
    pub name: String,
    /// Provider address: IP address or DNS name.
    pub host: String,
    /// Default 5060.
    #[serde(default = "default_port")]
    pub port: u16,
    /// "udp" (default), "tcp" or "tls".
    #[serde(default = "default_transport")]
    pub transport: String,
    /// Whether to REGISTER with the provider; needs `username`. Default
    /// false.
    #[serde(default)]
    pub register: bool,
    /// Account name. With `password` it also answers 401/407 challenges to
    /// outbound INVITEs when `register` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Digest username, when the provider wants one other than `username`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_username: Option<String>,
    /// Stored in clear in the database (a digest client needs it). Left
    /// out, a stored password is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Registration lifetime in seconds, 60 to 86400; default 3600.
    #[serde(default = "default_expiry")]
    pub expiry: u32,
    /// "keep" (default: pass the caller's number on), "user" (the calling
    /// user's caller ID) or a fixed number.
    #[serde(default = "default_caller_id")]
    pub caller_id: String,
    /// Host part of outbound From URIs, when not `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_domain: Option<String>,
    /// Addresses and CIDR blocks inbound calls are accepted from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inbound_trust: Vec<String>,
    /// Prefixes of dialled numbers routed over the trunk: digits, `+`, `*`,
    /// `#` and classes such as `[1-9]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dial_patterns: Vec<String>,
    /// Rewrites of the dialled number as `"strip>prepend"` strings: a
    /// number starting with `strip` loses it and gains `prepend` (`"00>+"`,
    /// `">0"` prepends 0 to every number); the first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub number_rules: Vec<String>,
    /// Concurrent call limit, at least 1; none when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_calls: Option<u32>,
    /// Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

fn default_port() -> u16 {
    5060
}
fn default_transport() -> String {
    "udp".into()
}
fn default_expiry() -> u32 {
    3600
}
fn default_caller_id() -> String {
    "keep".into()
}
fn default_true() -> bool {
    true
}

impl TrunkDef {
    /// A trunk with the defaults of every optional key.
    pub fn new(name: &str, host: &str) -> TrunkDef {
        TrunkDef {
            name: name.into(),
            host: host.into(),
            port: default_port(),
            transport: default_transport(),
            register: false,
            username: None,
            auth_username: None,
            password: None,
            expiry: default_expiry(),
            caller_id: default_caller_id(),
            from_domain: None,
            inbound_trust: Vec::new(),
            dial_patterns: Vec::new(),
            number_rules: Vec::new(),
            max_calls: None,
            enabled: true,
        }
    }

    /// The stored trunk in this form; `password` is `None`.
    pub fn from_store(t: &store::Trunk) -> TrunkDef {
        let reg = t.registration.as_ref();
        TrunkDef {
            name: t.name.clone(),
            host: t.host.clone(),
            port: t.port,
            transport: t.transport.to_string(),
            register: reg.is_some_and(|r| r.enabled),
            username: reg.map(|r| r.username.clone()),
            auth_username: reg.and_then(|r| r.auth_username.clone()),
            password: None,
            expiry: reg.map_or(default_expiry(), |r| r.expiry_secs),
            caller_id: match &t.caller_id {
                store::CallerIdPolicy::Keep => "keep".into(),
                store::CallerIdPolicy::User => "user".into(),
                store::CallerIdPolicy::Fixed(n) => n.clone(),
            },
            from_domain: t.from_domain.clone(),
            inbound_trust: t.inbound_trust.clone(),
            dial_patterns: t.dial_patterns.clone(),
            number_rules: t
                .number_rules
                .iter()
                .map(|r| format!("{}>{}", r.strip, r.prepend))
                .collect(),
            max_calls: t.max_calls,
            enabled: t.enabled,
        }
    }

    /// The store's form of this trunk, fully checked. An error names the
    /// key (`transport`, `expiry`, ...) and says why.
    pub fn to_store(&self) -> Result<store::TrunkConfig, (&'static str, String)> {
        let transport = match self.transport.parse::<store::Transport>() {
            Ok(t @ (store::Transport::Udp | store::Transport::Tcp | store::Transport::Tls)) => t,
            _ => {
                return Err((
                    "transport",
                    format!(
                        "`{}` is not one of \"udp\", \"tcp\", \"tls\"",
                        self.transport
                    ),
                ))
            }
        };
        let registration = match &self.username {
            Some(username) => Some(store::RegistrationConfig {
                enabled: self.register,
                username: username.clone(),
                auth_username: self.auth_username.clone(),
                password: self.password.clone(),
                expiry_secs: self.expiry,
            }),
            None if self.register => {
                return Err(("username", "required when register is true".into()))
            }
            None if self.password.is_some() => {
                return Err(("password", "needs a username to go with it".into()))
            }
            None if self.auth_username.is_some() => {
                return Err(("auth_username", "needs a username to go with it".into()))
            }
            None => None,
        };
        let caller_id = match self.caller_id.as_str() {
            "keep" => store::CallerIdPolicy::Keep,
            "user" => store::CallerIdPolicy::User,
            number => store::CallerIdPolicy::Fixed(number.to_owned()),
        };
        let number_rules = self
            .number_rules
            .iter()
            .map(|rule| {
                rule.split_once('>')
                    .map(|(strip, prepend)| store::NumberRule::new(strip, prepend))
                    .ok_or_else(|| {
                        (
                            "number_rules",
                            format!("`{rule}` is not of the form \"strip>prepend\", e.g. \"00>+\""),
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
        if self.max_calls == Some(0) {
            return Err((
                "max_calls",
                "must be at least 1; leave it out for no limit".into(),
            ));
        }
        let config = store::TrunkConfig {
            name: self.name.clone(),
            host: self.host.clone(),
            port: self.port,
            transport,
            registration,
            caller_id,
            from_domain: self.from_domain.clone(),
            inbound_trust: self.inbound_trust.clone(),
            dial_patterns: self.dial_patterns.clone(),
            number_rules,
            max_calls: self.max_calls,
            enabled: self.enabled,
        };
        match config.validate() {
            Ok(_) => Ok(config),
            Err(store::Error::Invalid { field, reason }) => {
                let field = match field {
                    "registration username" => "username",
                    "registration expiry" => "expiry",
                    other => other,
                };
                let reason = if field == "caller_id" {
                    format!(
                        "`{}` is not \"keep\", \"user\" or a number (digits with an optional \
                         leading +)",
                        self.caller_id
                    )
                } else {
                    reason
                };
                Err((field, reason))
            }
            Err(other) => Err(("name", other.to_string())),
        }
    }
}

/// `Some(value)` for a present key, `null` included (`Some(None)`); with
/// `#[serde(default)]` an absent key stays `None`.
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Body of `PUT /api/v1/trunks/{name}`: the keys given replace the stored
/// values, the others stay. `null` clears `username` (and with it the
/// credentials), `auth_username`, `password`, `from_domain` and
/// `max_calls`. The read-only keys of a GET answer are accepted and
/// ignored, so a fetched trunk can be edited and sent back.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkPatch {
    pub name: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub transport: Option<String>,
    pub register: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    pub username: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub auth_username: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub password: Option<Option<String>>,
    pub expiry: Option<u32>,
    pub caller_id: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub from_domain: Option<Option<String>>,
    pub inbound_trust: Option<Vec<String>>,
    pub dial_patterns: Option<Vec<String>>,
    pub number_rules: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub max_calls: Option<Option<u32>>,
    pub enabled: Option<bool>,
    #[serde(rename = "has_password")]
    _has_password: Option<IgnoredAny>,
    #[serde(rename = "created_at")]
    _created_at: Option<IgnoredAny>,
    #[serde(rename = "updated_at")]
    _updated_at: Option<IgnoredAny>,
    #[serde(rename = "registration_state")]
    _registration_state: Option<IgnoredAny>,
}

impl TrunkPatch {
    /// `def` with the given keys replaced.
    fn apply(self, mut def: TrunkDef) -> TrunkDef {
        fn set<T>(target: &mut T, value: Option<T>) {
            if let Some(v) = value {
                *target = v;
            }
        }
        set(&mut def.name, self.name);
        set(&mut def.host, self.host);
        set(&mut def.port, self.port);
        set(&mut def.transport, self.transport);
        set(&mut def.register, self.register);
        set(&mut def.username, self.username);
        set(&mut def.auth_username, self.auth_username);
        set(&mut def.password, self.password.flatten().map(Some));
        set(&mut def.expiry, self.expiry);
        set(&mut def.caller_id, self.caller_id);
        set(&mut def.from_domain, self.from_domain);
        set(&mut def.inbound_trust, self.inbound_trust);
        set(&mut def.dial_patterns, self.dial_patterns);
        set(&mut def.number_rules, self.number_rules);
        set(&mut def.max_calls, self.max_calls);
        set(&mut def.enabled, self.enabled);
        def
    }
}

/// The live state of a trunk as the API shows it, from [`TrunkStatusView`].
#[derive(Debug, Clone, Serialize)]
pub struct TrunkStateView {
    /// "disabled", "registering", "registered" or "failed".
    pub state: String,
    pub detail: Option<String>,
    pub expires_in: Option<u64>,
    pub active_calls: u32,
}

/// A trunk as the API shows it: the keys of [`TrunkDef`] without the
/// password, every one present (`null` when unset).
#[derive(Debug, Clone, Serialize)]
pub struct TrunkView {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub transport: String,
    pub register: bool,
    pub username: Option<String>,
    pub auth_username: Option<String>,
    pub has_password: bool,
    pub expiry: u32,
    pub caller_id: String,
    pub from_domain: Option<String>,
    pub inbound_trust: Vec<String>,
    pub dial_patterns: Vec<String>,
    pub number_rules: Vec<String>,
    pub max_calls: Option<u32>,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// Present when the signalling core reported the trunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_state: Option<TrunkStateView>,
}

impl TrunkView {
    fn new(t: &store::Trunk, status: Option<&TrunkStatusView>) -> TrunkView {
        let def = TrunkDef::from_store(t);
        TrunkView {
            name: def.name,
            host: def.host,
            port: def.port,
            transport: def.transport,
            register: def.register,
            username: def.username,
            auth_username: def.auth_username,
            has_password: t.registration.as_ref().is_some_and(|r| r.has_password),
            expiry: def.expiry,
            caller_id: def.caller_id,
            from_domain: def.from_domain,
            inbound_trust: def.inbound_trust,
            dial_patterns: def.dial_patterns,
            number_rules: def.number_rules,
            max_calls: def.max_calls,
            enabled: def.enabled,
            created_at: t.created_at,
            updated_at: t.updated_at,
            registration_state: status.map(|s| TrunkStateView {
                state: s.state.clone(),
                detail: s.detail.clone(),
                expires_in: s.expires_in,
                active_calls: s.active_calls,
            }),
        }
    }
}

/// Store errors of the trunk and DID routes: an invalid value is a 400.
fn trunk_error(e: store::Error) -> ApiError {
    match e {
        store::Error::Invalid { field, .. } => ApiError::bad_request(field, e.to_string()),
        other => ApiError::from(other),
    }
}

fn def_error((field, reason): (&'static str, String)) -> ApiError {
    ApiError::bad_request(field, format!("invalid {field}: {reason}"))
}

pub(crate) async fn list_trunks(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_token(&api, &headers)?;
    let trunks = api.with_store(|s| s.list_trunks()).await?;
    let status = api.trunk_status().await;
    let views: Vec<TrunkView> = trunks
        .iter()
        .map(|t| TrunkView::new(t, status.as_ref().and_then(|m| m.get(&t.name))))
        .collect();
    Ok(Json(serde_json::json!({ "trunks": views })))
}

pub(crate) async fn create_trunk(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<TrunkView>), ApiError> {
    check_token(&api, &headers)?;
    let def: TrunkDef = parse_json(&body)?;
    let config = def.to_store().map_err(def_error)?;
    let trunk = api
        .with_store_as(move |s| s.add_trunk(&config), trunk_error)
        .await?;
    Ok((StatusCode::CREATED, Json(TrunkView::new(&trunk, None))))
}

pub(crate) async fn get_trunk(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<TrunkView>, ApiError> {
    check_token(&api, &headers)?;
    let n = name.clone();
    let trunk = api
        .with_store(move |s| s.get_trunk(&n))
        .await?
        .ok_or_else(|| ApiError::from(store::Error::TrunkNotFound(name)))?;
    let status = api.trunk_status().await;
    Ok(Json(TrunkView::new(
        &trunk,
        status.as_ref().and_then(|m| m.get(&trunk.name)),
    )))
}

pub(crate) async fn update_trunk(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<TrunkView>, ApiError> {
    check_token(&api, &headers)?;
    let patch: TrunkPatch = parse_json(&body)?;
    let clear_password = matches!(patch.password, Some(None));
    let trunk = api
        .with_store_as(
            move |s| {
                let current = s
                    .get_trunk(&name)?
                    .ok_or_else(|| store::Error::TrunkNotFound(name.clone()))?;
                let def = patch.apply(TrunkDef::from_store(&current));
                let config = def
                    .to_store()
                    .map_err(|(field, reason)| store::Error::Invalid { field, reason })?;
                let mut trunk = s.update_trunk(&name, &config)?;
                if clear_password && trunk.registration.is_some() {
                    s.set_trunk_password(&trunk.name, None)?;
                    trunk = s
                        .get_trunk(&trunk.name)?
                        .ok_or_else(|| store::Error::TrunkNotFound(trunk.name.clone()))?;
                }
                Ok(trunk)
            },
            trunk_error,
        )
        .await?;
    Ok(Json(TrunkView::new(&trunk, None)))
}

pub(crate) async fn delete_trunk(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_token(&api, &headers)?;
    api.with_store(move |s| s.remove_trunk(&name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A DID as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DidView {
    pub number: String,
    pub trunk: String,
    pub user: String,
    pub created_at: i64,
}

impl From<store::Did> for DidView {
    fn from(d: store::Did) -> Self {
        DidView {
            number: d.number,
            trunk: d.trunk,
            user: d.username,
            created_at: d.created_at,
        }
    }
}

/// Body of `POST /api/v1/dids`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDidBody {
    pub number: String,
    pub trunk: String,
    pub user: String,
}

pub(crate) async fn list_dids(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_token(&api, &headers)?;
    if let Some(key) = q.keys().find(|k| k.as_str() != "trunk") {
        return Err(ApiError::bad_request(
            key,
            format!("unknown parameter {key:?}; only trunk filters DIDs"),
        ));
    }
    let trunk = q.get("trunk").cloned();
    let dids = api
        .with_store(move |s| s.list_dids(trunk.as_deref()))
        .await?;
    let dids: Vec<DidView> = dids.into_iter().map(DidView::from).collect();
    Ok(Json(serde_json::json!({ "dids": dids })))
}

pub(crate) async fn create_did(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<DidView>), ApiError> {
    check_token(&api, &headers)?;
    let body: NewDidBody = parse_json(&body)?;
    let did = api
        .with_store_as(
            move |s| s.add_did(&body.number, &body.trunk, &body.user),
            // The trunk and user are values of the body, not the resource.
            |e| match e {
                store::Error::TrunkNotFound(_) => ApiError::bad_request("trunk", e.to_string()),
                store::Error::UserNotFound(_) => ApiError::bad_request("user", e.to_string()),
                other => trunk_error(other),
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(did.into())))
}

pub(crate) async fn delete_did(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Path(number): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_token(&api, &headers)?;
    api.with_store(move |s| s.remove_did(&number)).await?;
    Ok(StatusCode::NO_CONTENT)
}
