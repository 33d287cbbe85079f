//! Prepares the page benchmark against a running portal (started with `STOEP_DEMO=true`; run
//! this with the same `STOEP_*` environment): a verified customer with five upcoming bookings and
//! an admin with two-step verification, both signed in over HTTP through the sign-in server
//! functions as a browser without JavaScript would. Prints, for `run.sh` to read:
//!
//! ```text
//! service_id=<the demo Consultation>
//! customer_cookie=stoep_session=...
//! admin_cookie=stoep_session=...
//! ```
//!
//! `page_setup <portal base URL>`

use anyhow::{Context, bail};
use domain::booking;
use domain::db::now_ms;
use secrecy::SecretString;

const PASSWORD: &str = "copper kettle under the stoep 71";
/// Base32 TOTP secret of the benchmark admin.
const TOTP_SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:3300".into());
    let services = stoep_bench::portal_from_env().await?;
    let db = &services.db;
    let settings = &services.settings;
    let service_id = stoep_bench::consultation(db).await?;
    let service = booking::service(db, service_id)
        .await?
        .context("no Consultation service")?;

    // A customer with a few bookings, spread over the coming days.
    let hash = domain::auth::hash_password(SecretString::from(PASSWORD.to_owned()))
        .await
        .map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
    let customer = stoep_bench::add_customers(db, 1, "pages", Some(&hash)).await?[0];
    let now = now_ms();
    let free = booking::search(db, &service, None, now, now + 14 * 86_400_000, now).await?;
    let step = (free.len() / 5).max(1);
    let mut made = 0;
    for (start, _) in free.iter().step_by(step).take(5) {
        booking::create(db, settings, customer, service_id, None, *start)
            .await
            .map_err(|e| anyhow::anyhow!("booking for the customer page: {e}"))?;
        made += 1;
    }
    if made < 5 {
        bail!("only {made} free starts for the customer's bookings");
    }

    let admin_email = "bench-admin@example.com";
    domain::auth::create_or_promote_admin(
        db,
        admin_email,
        "Bench Admin",
        SecretString::from(PASSWORD.to_owned()),
        Some(TOTP_SECRET),
        false,
    )
    .await
    .map_err(|e| anyhow::anyhow!("creating the admin: {e}"))?;

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let customer_cookie = sign_in(&client, &base, "pages0@bench.example.com", None).await?;
    let admin_cookie = sign_in(&client, &base, admin_email, Some(TOTP_SECRET)).await?;
    println!("service_id={service_id}");
    println!("customer_cookie={customer_cookie}");
    println!("admin_cookie={admin_cookie}");
    Ok(())
}

/// Signs in through `/api/sign_in` (and `/api/verify_sign_in_code` with a TOTP code when
/// `totp` is given); returns the session cookie as `name=value`.
async fn sign_in(
    client: &reqwest::Client,
    base: &str,
    email: &str,
    totp: Option<&str>,
) -> anyhow::Result<String> {
    let mut cookie = String::new();
    let res = post(
        client,
        base,
        "/api/sign_in",
        &cookie,
        &[("email", email), ("password", PASSWORD)],
    )
    .await?;
    take_cookie(&res, &mut cookie);
    let location = header(&res, "location");
    if let Some(secret) = totp {
        if location != "/signin/verify" {
            bail!(
                "{email}: the password step answered {} -> {location:?}",
                res.status()
            );
        }
        let raw = domain::totp::base32_decode(secret).context("bad TOTP secret")?;
        let code = domain::totp::code_at(&raw, now_ms() / 1000 / 30);
        let res = post(
            client,
            base,
            "/api/verify_sign_in_code",
            &cookie,
            &[("code", &code)],
        )
        .await?;
        take_cookie(&res, &mut cookie);
        let location = header(&res, "location");
        if location.contains("__err") || !res.status().is_redirection() {
            bail!(
                "{email}: the code step answered {} -> {location:?}",
                res.status()
            );
        }
    } else if location.contains("__err") || !res.status().is_redirection() {
        bail!("{email}: sign-in answered {} -> {location:?}", res.status());
    }
    if cookie.is_empty() {
        bail!("{email}: no session cookie after signing in");
    }
    Ok(cookie)
}

async fn post(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    cookie: &str,
    form: &[(&str, &str)],
) -> anyhow::Result<reqwest::Response> {
    let body: String = form
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut req = client
        .post(format!("{base}{path}"))
        .header("origin", base)
        .header("referer", format!("{base}/signin"))
        .header("accept", "text/html")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if !cookie.is_empty() {
        req = req.header("cookie", cookie);
    }
    Ok(req.send().await?)
}

/// Keeps the last `Set-Cookie` value (the session id changes at sign-in).
fn take_cookie(res: &reqwest::Response, cookie: &mut String) {
    for v in res.headers().get_all("set-cookie") {
        if let Some(pair) = v.to_str().ok().and_then(|s| s.split(';').next()) {
            *cookie = pair.trim().to_owned();
        }
    }
}

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
