//! The OAuth 2.0 authorization server both calendar stand-ins ([`crate::google_calendar`],
//! [`crate::microsoft_graph`]) run: the authorization-code grant with PKCE (RFC 7636), refresh
//! tokens, revocation, bearer-token checks, and the consent page where a tester picks an
//! account and answers "Allow" or "Deny".
//!
//! Why shared: the two providers agree on the flow and differ in its details, which are
//! parameters here: whether a refresh rotates the refresh token (Microsoft) or keeps it
//! (Google), how "offline" is asked for (`access_type=offline` or the `offline_access` scope),
//! and each one's error JSON (the stand-ins map [`TokenError`] to their own shape). The rules
//! the portal's client must live with are the same for both and enforced here: a code is single
//! use, lives ten minutes, and is bound to the client, the redirect URI and the PKCE challenge;
//! a wrong verifier is `invalid_grant`; a revoked grant (or one from before a "revoke all"
//! fault) refuses refreshes with `invalid_grant` and its access tokens with 401.

use std::collections::HashMap;

use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::common::esc;

/// How long an authorization code lives.
pub const CODE_TTL_MS: u64 = 10 * 60 * 1000;
/// Most codes, grants and access tokens kept (the oldest are forgotten first).
const MAX_KEPT: usize = 5_000;

/// `BASE64URL-NOPAD(SHA256(verifier))`: the S256 code challenge of a PKCE verifier.
pub fn pkce_s256(verifier: &str) -> String {
    base64url(&Sha256::digest(verifier.as_bytes()))
}

/// Base64url without padding (RFC 4648 §5).
pub fn base64url(bytes: &[u8]) -> String {
    guards::signature::base64(bytes)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// Whether `v` is a PKCE verifier: 43 to 128 characters of `[A-Za-z0-9-._~]`.
pub fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// A random token with a recognisable prefix (`ya29.`, `1//`, `EwB`...).
pub fn random_token(prefix: &str, len: usize) -> String {
    let tail: String = rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect();
    format!("{prefix}{tail}")
}

/// An authorization request, as read from the query of `/authorize` (both providers use the
/// same names).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub response_type: String,
    pub scopes: Vec<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    /// `S256` or `plain` (what an absent method means).
    pub code_challenge_method: String,
    pub prompt: Option<String>,
    pub login_hint: Option<String>,
    /// Google's `access_type=offline`; for Microsoft, the `offline_access` scope.
    pub offline: bool,
}

impl AuthRequest {
    /// Reads the query parameters (scope split on spaces).
    pub fn from_query(q: &HashMap<String, String>) -> AuthRequest {
        let get = |k: &str| {
            q.get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let scopes: Vec<String> = get("scope")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        AuthRequest {
            client_id: get("client_id").unwrap_or_default(),
            redirect_uri: get("redirect_uri").unwrap_or_default(),
            response_type: get("response_type").unwrap_or_default(),
            offline: get("access_type").as_deref() == Some("offline")
                || scopes.iter().any(|s| s == "offline_access"),
            scopes,
            state: get("state"),
            code_challenge: get("code_challenge"),
            code_challenge_method: get("code_challenge_method").unwrap_or_else(|| "plain".into()),
            prompt: get("prompt"),
            login_hint: get("login_hint"),
        }
    }

    /// The redirect back with `params` added to the redirect URI's query (and `state`).
    pub fn redirect_with(&self, params: &[(&str, &str)]) -> String {
        let mut url = match url::Url::parse(&self.redirect_uri) {
            Ok(u) => u,
            Err(_) => return self.redirect_uri.clone(),
        };
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in params {
                q.append_pair(k, v);
            }
            if let Some(state) = &self.state {
                q.append_pair("state", state);
            }
        }
        url.to_string()
    }
}

/// A client the server knows.
#[derive(Clone, Debug)]
pub struct Client {
    pub client_id: String,
    pub client_secret: String,
    /// Exact redirect URIs allowed; empty allows any `http`/`https` URI (handy for tests on
    /// random ports).
    pub redirect_uris: Vec<String>,
}

impl Client {
    /// Whether `uri` may be redirected to.
    pub fn allows_redirect(&self, uri: &str) -> bool {
        if self.redirect_uris.is_empty() {
            return url::Url::parse(uri).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        }
        self.redirect_uris.iter().any(|r| r == uri)
    }

    /// Whether the token request authenticated as this client: `client_id` and
    /// `client_secret` in the form, or HTTP Basic.
    pub fn authenticated(
        &self,
        form: &HashMap<String, String>,
        authorization: Option<&str>,
    ) -> bool {
        if let Some(auth) = authorization {
            let expected = format!(
                "Basic {}",
                guards::signature::base64(
                    format!("{}:{}", self.client_id, self.client_secret).as_bytes()
                )
            );
            return guards::signature::same(auth.trim(), &expected);
        }
        form.get("client_id").map(String::as_str) == Some(self.client_id.as_str())
            && form
                .get("client_secret")
                .is_some_and(|s| guards::signature::same(s, &self.client_secret))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Code {
    code: String,
    account: String,
    client_id: String,
    redirect_uri: String,
    challenge: Option<String>,
    method: String,
    scopes: Vec<String>,
    offline: bool,
    consent: bool,
    created_ms: u64,
    used: bool,
}

/// A grant: what a refresh token stands for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Grant {
    pub refresh_token: String,
    pub account: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub revoked: bool,
    /// The "revoke every grant" epoch it was made in; an older one counts as revoked.
    pub epoch: u32,
    pub created_ms: u64,
    /// Refreshes it answered (for the admin page).
    pub refreshes: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Access {
    token: String,
    account: String,
    scopes: Vec<String>,
    expires_ms: u64,
    /// The grant's refresh token, if there is one.
    grant: Option<String>,
    /// The "expire every access token" epoch it was made in.
    epoch: u32,
}

/// The fault epochs in force: raising one invalidates everything made before.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epochs {
    pub grants: u32,
    pub access: u32,
}

/// Why a token request failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenError {
    /// `invalid_grant`: a bad, used, expired or revoked code or refresh token, a wrong PKCE
    /// verifier, a redirect URI that differs.
    InvalidGrant(&'static str),
    /// `invalid_request`: a parameter is missing.
    InvalidRequest(&'static str),
    /// `invalid_client`: the client did not authenticate.
    InvalidClient,
    /// `unsupported_grant_type`.
    UnsupportedGrantType,
}

impl TokenError {
    /// The OAuth `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::InvalidGrant(_) => "invalid_grant",
            TokenError::InvalidRequest(_) => "invalid_request",
            TokenError::InvalidClient => "invalid_client",
            TokenError::UnsupportedGrantType => "unsupported_grant_type",
        }
    }

    /// The human description.
    pub fn description(&self) -> &'static str {
        match self {
            TokenError::InvalidGrant(d) | TokenError::InvalidRequest(d) => d,
            TokenError::InvalidClient => "Unauthorized",
            TokenError::UnsupportedGrantType => "Invalid grant_type",
        }
    }
}

/// What a successful token request issued.
#[derive(Clone, Debug)]
pub struct Issued {
    pub account: String,
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: Option<String>,
    pub scopes: Vec<String>,
}

/// Why a bearer token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessError {
    /// No `Authorization: Bearer` header.
    Missing,
    /// Unknown, expired, or its grant revoked.
    Invalid,
}

/// Codes, grants and access tokens, kept in the stand-in's state file.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OAuthStore {
    codes: Vec<Code>,
    pub grants: Vec<Grant>,
    tokens: Vec<Access>,
}

fn trim_to_max<T>(v: &mut Vec<T>) {
    if v.len() > MAX_KEPT {
        let excess = v.len() - MAX_KEPT;
        v.drain(..excess);
    }
}

impl OAuthStore {
    /// Issues a code for `account`, granting `scopes` (what the tester left ticked).
    pub fn issue_code(
        &mut self,
        req: &AuthRequest,
        account: &str,
        scopes: Vec<String>,
        now: u64,
    ) -> String {
        let code = random_token("4/0Sb", 40);
        self.codes.push(Code {
            code: code.clone(),
            account: account.to_owned(),
            client_id: req.client_id.clone(),
            redirect_uri: req.redirect_uri.clone(),
            challenge: req.code_challenge.clone(),
            method: req.code_challenge_method.clone(),
            scopes,
            offline: req.offline,
            consent: req
                .prompt
                .as_deref()
                .is_some_and(|p| p.split_whitespace().any(|p| p == "consent")),
            created_ms: now,
            used: false,
        });
        trim_to_max(&mut self.codes);
        code
    }

    fn grant_live(&self, g: &Grant, epochs: Epochs) -> bool {
        !g.revoked && g.epoch >= epochs.grants
    }

    #[allow(clippy::too_many_arguments)]
    fn mint_access(
        &mut self,
        account: &str,
        scopes: &[String],
        grant: Option<String>,
        ttl_secs: u64,
        now: u64,
        epochs: Epochs,
        prefix: &str,
    ) -> String {
        let token = random_token(prefix, 64);
        self.tokens.push(Access {
            token: token.clone(),
            account: account.to_owned(),
            scopes: scopes.to_vec(),
            expires_ms: now + ttl_secs * 1000,
            grant,
            epoch: epochs.access,
        });
        trim_to_max(&mut self.tokens);
        token
    }

    /// The `authorization_code` grant. `always_refresh`: issue a refresh token for every
    /// offline code (Microsoft); otherwise only on first consent or `prompt=consent` (Google).
    #[allow(clippy::too_many_arguments)]
    pub fn exchange_code(
        &mut self,
        form: &HashMap<String, String>,
        client_id: &str,
        ttl_secs: u64,
        now: u64,
        epochs: Epochs,
        always_refresh: bool,
        prefixes: (&str, &str),
    ) -> Result<Issued, TokenError> {
        let code = form.get("code").ok_or(TokenError::InvalidRequest(
            "Missing required parameter: code",
        ))?;
        let i = self
            .codes
            .iter()
            .position(|c| c.code == *code)
            .ok_or(TokenError::InvalidGrant("Malformed auth code."))?;
        let c = self.codes[i].clone();
        if c.used {
            return Err(TokenError::InvalidGrant(
                "Bad Request: the code was already used",
            ));
        }
        self.codes[i].used = true;
        if now.saturating_sub(c.created_ms) > CODE_TTL_MS {
            return Err(TokenError::InvalidGrant(
                "Bad Request: the code has expired",
            ));
        }
        if c.client_id != client_id {
            return Err(TokenError::InvalidGrant(
                "Bad Request: the code was issued to another client",
            ));
        }
        if form.get("redirect_uri").map(String::as_str) != Some(c.redirect_uri.as_str()) {
            return Err(TokenError::InvalidGrant(
                "Bad Request: redirect_uri_mismatch",
            ));
        }
        if let Some(challenge) = &c.challenge {
            let verifier = form
                .get("code_verifier")
                .ok_or(TokenError::InvalidRequest("Missing code verifier."))?;
            let computed = if c.method.eq_ignore_ascii_case("S256") {
                pkce_s256(verifier)
            } else {
                verifier.clone()
            };
            if !valid_verifier(verifier) || !guards::signature::same(&computed, challenge) {
                return Err(TokenError::InvalidGrant("Invalid code verifier."));
            }
        }
        let mut refresh_token = None;
        if c.offline {
            let has_live = self.grants.iter().any(|g| {
                g.account == c.account && g.client_id == c.client_id && self.grant_live(g, epochs)
            });
            if always_refresh || c.consent || !has_live {
                let rt = random_token(prefixes.1, 60);
                self.grants.push(Grant {
                    refresh_token: rt.clone(),
                    account: c.account.clone(),
                    client_id: c.client_id.clone(),
                    scopes: c.scopes.clone(),
                    revoked: false,
                    epoch: epochs.grants,
                    created_ms: now,
                    refreshes: 0,
                });
                trim_to_max(&mut self.grants);
                refresh_token = Some(rt);
            }
        }
        let access_token = self.mint_access(
            &c.account,
            &c.scopes,
            refresh_token.clone(),
            ttl_secs,
            now,
            epochs,
            prefixes.0,
        );
        Ok(Issued {
            account: c.account,
            access_token,
            expires_in: ttl_secs.saturating_sub(1),
            refresh_token,
            scopes: c.scopes,
        })
    }

    /// The `refresh_token` grant. `rotate`: replace the refresh token with a new one (the old
    /// one then refuses, as Microsoft may) and return it.
    #[allow(clippy::too_many_arguments)]
    pub fn refresh(
        &mut self,
        form: &HashMap<String, String>,
        client_id: &str,
        ttl_secs: u64,
        now: u64,
        epochs: Epochs,
        rotate: bool,
        prefixes: (&str, &str),
    ) -> Result<Issued, TokenError> {
        let rt = form.get("refresh_token").ok_or(TokenError::InvalidRequest(
            "Missing required parameter: refresh_token",
        ))?;
        let i = self
            .grants
            .iter()
            .position(|g| g.refresh_token == *rt)
            .ok_or(TokenError::InvalidGrant("Bad Request"))?;
        if !self.grant_live(&self.grants[i], epochs) {
            return Err(TokenError::InvalidGrant(
                "Token has been expired or revoked.",
            ));
        }
        if self.grants[i].client_id != client_id {
            return Err(TokenError::InvalidGrant(
                "Bad Request: the token was issued to another client",
            ));
        }
        self.grants[i].refreshes += 1;
        let mut grant = self.grants[i].clone();
        let mut new_rt = None;
        if rotate {
            let next = random_token(prefixes.1, 60);
            self.grants[i].revoked = true;
            grant.refresh_token = next.clone();
            grant.created_ms = now;
            self.grants.push(grant.clone());
            trim_to_max(&mut self.grants);
            new_rt = Some(next);
        }
        let access_token = self.mint_access(
            &grant.account,
            &grant.scopes,
            Some(grant.refresh_token.clone()),
            ttl_secs,
            now,
            epochs,
            prefixes.0,
        );
        Ok(Issued {
            account: grant.account,
            access_token,
            expires_in: ttl_secs.saturating_sub(1),
            refresh_token: new_rt,
            scopes: grant.scopes,
        })
    }

    /// Revokes the grant of a refresh token or an access token (and every access token it
    /// issued). `false` if the token is unknown or already revoked.
    pub fn revoke(&mut self, token: &str, epochs: Epochs) -> bool {
        let grant = match self.tokens.iter().find(|t| t.token == token) {
            Some(t) => t.grant.clone(),
            None => Some(token.to_owned()),
        };
        let mut found = false;
        if let Some(rt) = grant
            && let Some(g) = self.grants.iter_mut().find(|g| g.refresh_token == rt)
        {
            found = !g.revoked && g.epoch >= epochs.grants;
            g.revoked = true;
            self.tokens
                .retain(|t| t.grant.as_deref() != Some(rt.as_str()));
        }
        let before = self.tokens.len();
        self.tokens.retain(|t| t.token != token);
        found || self.tokens.len() != before
    }

    /// Revokes every grant of `account` (the user removed the app); returns how many.
    pub fn revoke_account(&mut self, account: &str) -> usize {
        let mut n = 0;
        for g in self
            .grants
            .iter_mut()
            .filter(|g| g.account == account && !g.revoked)
        {
            g.revoked = true;
            n += 1;
        }
        self.tokens.retain(|t| t.account != account);
        n
    }

    /// Checks `Authorization: Bearer …`; the account and granted scopes.
    pub fn check(
        &self,
        authorization: Option<&str>,
        now: u64,
        epochs: Epochs,
    ) -> Result<(String, Vec<String>), AccessError> {
        let token = authorization
            .and_then(|a| {
                a.trim()
                    .strip_prefix("Bearer ")
                    .or_else(|| a.trim().strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or(AccessError::Missing)?;
        let t = self
            .tokens
            .iter()
            .find(|t| t.token == token)
            .ok_or(AccessError::Invalid)?;
        if t.expires_ms <= now || t.epoch < epochs.access {
            return Err(AccessError::Invalid);
        }
        if let Some(rt) = &t.grant
            && !self
                .grants
                .iter()
                .any(|g| g.refresh_token == *rt && self.grant_live(g, epochs))
        {
            return Err(AccessError::Invalid);
        }
        Ok((t.account.clone(), t.scopes.clone()))
    }

    /// Whether `account` holds a live grant (for the admin page).
    pub fn live_grants(&self, epochs: Epochs) -> Vec<&Grant> {
        self.grants
            .iter()
            .filter(|g| self.grant_live(g, epochs))
            .collect()
    }
}

/// The consent page: the scopes asked for (each a ticked checkbox, as granular consent
/// lets a user untick them), a choice of account, and Allow / Deny, POSTed to `action` with
/// the original query in a hidden field.
pub fn consent_page(
    provider: &str,
    action: &str,
    query: &str,
    req: &AuthRequest,
    accounts: &[(String, String)],
) -> String {
    let mut body = format!(
        "<h1>{provider}: sign in</h1><p>The app <code>{client}</code> wants to reach your \
         calendar. It will come back to <code>{redirect}</code>.</p>\
         <form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"query\" value=\"{query}\">\
         <fieldset><legend>Account</legend>",
        provider = esc(provider),
        client = esc(&req.client_id),
        redirect = esc(&req.redirect_uri),
        action = esc(action),
        query = esc(query),
    );
    let hinted = accounts
        .iter()
        .position(|(email, _)| req.login_hint.as_deref() == Some(email.as_str()))
        .unwrap_or(0);
    for (i, (email, name)) in accounts.iter().enumerate() {
        body.push_str(&format!(
            "<div><input type=\"radio\" id=\"acct{i}\" name=\"account\" value=\"{e}\"{checked} style=\"width:auto\"> \
             <label for=\"acct{i}\" style=\"display:inline\">{n} &lt;{e}&gt;</label></div>",
            e = esc(email),
            n = esc(name),
            checked = if i == hinted { " checked" } else { "" },
        ));
    }
    body.push_str("</fieldset><fieldset><legend>Permissions</legend>");
    for (i, scope) in req.scopes.iter().enumerate() {
        body.push_str(&format!(
            "<div><input type=\"checkbox\" id=\"scope{i}\" name=\"scope\" value=\"{s}\" checked style=\"width:auto\"> \
             <label for=\"scope{i}\" style=\"display:inline\">{s}</label></div>",
            s = esc(scope)
        ));
    }
    body.push_str(
        "</fieldset><button class=\"primary\" type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\
         <button class=\"secondary\" type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>\
         <p class=\"note\">A local stand-in: no real account is touched.</p>",
    );
    crate::common::page(&format!("{provider}: sign in"), &body, false)
}

/// Reads an `application/x-www-form-urlencoded` body, keeping repeated names (`scope`)
/// joined with spaces.
pub fn parse_form(body: &[u8]) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        out.entry(k.into_owned())
            .and_modify(|e| {
                e.push(' ');
                e.push_str(&v);
            })
            .or_insert_with(|| v.into_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_the_rfc_7636_vector() {
        assert_eq!(
            pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(valid_verifier(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        ));
        assert!(!valid_verifier("short"));
        assert!(!valid_verifier(&"a b".repeat(20)));
    }
}
