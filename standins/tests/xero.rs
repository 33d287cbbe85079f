//! The Xero stand-in over real HTTP on 127.0.0.1, driven the way the portal's Xero client
//! drives Xero: the consent page and the code exchange (PKCE), rotating refresh tokens,
//! `/connections`, contacts keyed on the ContactNumber, VAT-inclusive invoices, payments,
//! credit notes and their refunds, idempotency keys, Xero's validation errors, its rate limits
//! and the faults, the "edit in Xero" action included, and the signed webhooks that report
//! changes.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use standins::xero::{
    CLIENT_ID, CLIENT_SECRET, FORCED_VALIDATION_MESSAGE, NOT_FOUND_TEXT, RECOMMENDED_SCOPES,
    TENANT_ID, TENANT_NAME, XeroEdit, XeroStandin, XeroStandinConfig,
};
use tokio_util::sync::CancellationToken;

const REDIRECT: &str = "http://localhost:3000/accounting/xero/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-stoep-test";

struct Harness {
    standin: XeroStandin,
    http: reqwest::Client,
    _stop: tokio_util::sync::DropGuard,
}

async fn harness(cfg: XeroStandinConfig) -> Harness {
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let standin = XeroStandin::start(listener, cfg, shutdown.clone())
        .await
        .expect("the stand-in starts");
    Harness {
        standin,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client"),
        _stop: shutdown.drop_guard(),
    }
}

#[derive(Clone, Debug)]
struct Tokens {
    access: String,
    refresh: String,
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The query pairs of a redirect's `Location`.
fn location_query(resp: &reqwest::Response) -> Vec<(String, String)> {
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("a Location header");
    let url = url::Url::parse(location).expect("an absolute URL");
    assert!(location.starts_with(REDIRECT), "{location}");
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn pair<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The consent form as the page posts it, Allow or Cancel.
fn consent_form(decision: &str, scope: &str) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("client_id", CLIENT_ID.into()),
        ("redirect_uri", REDIRECT.into()),
        ("scope", scope.into()),
        ("state", "csrf-123 & more".into()),
        ("code_challenge", challenge(VERIFIER)),
        ("code_challenge_method", "S256".into()),
        ("tenant", TENANT_ID.into()),
        ("decision", decision.into()),
    ]
}

/// Allow on the consent page, then the code for tokens.
async fn connect(h: &Harness) -> Tokens {
    let resp = h
        .http
        .post(h.standin.authorize_url())
        .form(&consent_form("allow", RECOMMENDED_SCOPES))
        .send()
        .await
        .expect("consent");
    assert_eq!(resp.status(), StatusCode::FOUND);
    let q = location_query(&resp);
    assert_eq!(pair(&q, "state"), Some("csrf-123 & more"));
    let code = pair(&q, "code").expect("a code").to_owned();
    let resp = h
        .http
        .post(h.standin.token_url())
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("json");
    Tokens {
        access: body["access_token"].as_str().expect("access token").into(),
        refresh: body["refresh_token"]
            .as_str()
            .expect("refresh token")
            .into(),
    }
}

async fn refresh(h: &Harness, token: &str) -> reqwest::Response {
    h.http
        .post(h.standin.token_url())
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
        .send()
        .await
        .expect("refresh")
}

/// An Accounting API request as the portal's client sends it.
fn api(h: &Harness, t: &Tokens, method: Method, path: &str) -> reqwest::RequestBuilder {
    h.http
        .request(method, format!("{}{path}", h.standin.api_url()))
        .bearer_auth(&t.access)
        .header("xero-tenant-id", TENANT_ID)
        .header("Accept", "application/json")
}

async fn send_json(rb: reqwest::RequestBuilder, body: &Value) -> (StatusCode, Value) {
    let resp = rb.json(body).send().await.expect("send");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn get_json(rb: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = rb.send().await.expect("send");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn quick() -> XeroStandinConfig {
    XeroStandinConfig {
        refresh_grace: Duration::ZERO,
        ..XeroStandinConfig::default()
    }
}

async fn create_contact(h: &Harness, t: &Tokens, name: &str, number: &str) -> String {
    let (status, body) = send_json(
        api(h, t, Method::PUT, "/Contacts"),
        &json!({ "Contacts": [{ "Name": name, "ContactNumber": number, "EmailAddress": "accounts@example.co.za" }] }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["Contacts"][0]["ContactID"]
        .as_str()
        .expect("an id")
        .to_owned()
}

fn invoice(contact_id: &str, gross: f64) -> Value {
    json!({ "Invoices": [{
        "Type": "ACCREC",
        "Contact": { "ContactID": contact_id },
        "Date": "2026-08-01",
        "DueDate": "2026-08-31",
        "LineAmountTypes": "Inclusive",
        "Reference": "PORTAL-INV-42",
        "CurrencyCode": "ZAR",
        "Status": "AUTHORISED",
        "LineItems": [{
            "Description": "Deposit: garden service",
            "Quantity": 1,
            "UnitAmount": gross,
            "AccountCode": "200",
            "TaxType": "OUTPUT3",
        }],
    }]})
}

fn messages(element: &Value) -> Vec<String> {
    element["ValidationErrors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["Message"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn consent_then_code_exchange_connects_the_demo_company_and_refresh_tokens_rotate() {
    let h = harness(quick()).await;
    let page_url = format!(
        "{}?response_type=code&client_id={CLIENT_ID}&redirect_uri={}&scope={}&state=abc&code_challenge={}&code_challenge_method=S256",
        h.standin.authorize_url(),
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>(),
        url::form_urlencoded::byte_serialize(RECOMMENDED_SCOPES.as_bytes()).collect::<String>(),
        challenge(VERIFIER),
    );
    let page = h.http.get(&page_url).send().await.expect("consent page");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(
        html.contains(TENANT_NAME) && html.contains("Allow access"),
        "{html}"
    );

    let first = connect(&h).await;
    let conns = h
        .http
        .get(h.standin.connections_url())
        .bearer_auth(&first.access)
        .send()
        .await
        .expect("connections");
    assert_eq!(conns.status(), StatusCode::OK);
    assert!(conns.headers().contains_key("x-appminlimit-remaining"));
    assert!(!conns.headers().contains_key("x-minlimit-remaining"));
    let conns: Value = conns.json().await.expect("json");
    assert_eq!(conns[0]["tenantId"], TENANT_ID);
    assert_eq!(conns[0]["tenantType"], "ORGANISATION");
    assert_eq!(conns[0]["tenantName"], TENANT_NAME);

    let (status, org) = get_json(api(&h, &first, Method::GET, "/Organisation")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(org["Organisations"][0]["BaseCurrency"], "ZAR");
    assert_eq!(org["Organisations"][0]["CountryCode"], "ZA");
    assert_eq!(org["Status"], "OK");

    let resp = refresh(&h, &first.refresh).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("json");
    let second = Tokens {
        access: body["access_token"].as_str().expect("access").into(),
        refresh: body["refresh_token"].as_str().expect("refresh").into(),
    };
    assert_ne!(
        second.refresh, first.refresh,
        "each refresh rotates the refresh token"
    );
    assert_eq!(body["expires_in"], 1800);
    assert_eq!(body["token_type"], "Bearer");

    let resp = refresh(&h, &first.refresh).await;
    assert_eq!(
        resp.status(),
        StatusCode::BAD_REQUEST,
        "the old refresh token stops working"
    );
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "invalid_grant");

    assert_eq!(refresh(&h, &second.refresh).await.status(), StatusCode::OK);
    let (status, _) = get_json(api(&h, &second, Method::GET, "/Organisation")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_lost_refresh_answer_can_be_retried_within_the_grace_period_until_its_successor_is_used()
{
    let h = harness(XeroStandinConfig::default()).await;
    let t = connect(&h).await;
    let lost: Value = refresh(&h, &t.refresh).await.json().await.expect("json");
    let retried = refresh(&h, &t.refresh).await;
    assert_eq!(
        retried.status(),
        StatusCode::OK,
        "retried within Xero's 30 minutes"
    );
    let retried: Value = retried.json().await.expect("json");
    let lost_refresh = lost["refresh_token"].as_str().expect("token");
    assert_eq!(
        refresh(&h, lost_refresh).await.status(),
        StatusCode::BAD_REQUEST,
        "the answer that was lost is void"
    );
    let current = retried["refresh_token"].as_str().expect("token");
    assert_eq!(refresh(&h, current).await.status(), StatusCode::OK);
    assert_eq!(
        refresh(&h, &t.refresh).await.status(),
        StatusCode::BAD_REQUEST,
        "once its successor is used the old token is dead"
    );

    // Past the grace period a used token is refused even if nothing used its successor.
    let t = connect(&h).await;
    assert_eq!(refresh(&h, &t.refresh).await.status(), StatusCode::OK);
    h.standin.advance_clock(Duration::from_secs(31 * 60));
    assert_eq!(
        refresh(&h, &t.refresh).await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn denying_consent_sends_access_denied_and_a_wrong_verifier_or_reused_code_is_refused() {
    let h = harness(quick()).await;
    let resp = h
        .http
        .post(h.standin.authorize_url())
        .form(&consent_form("deny", RECOMMENDED_SCOPES))
        .send()
        .await
        .expect("deny");
    assert_eq!(resp.status(), StatusCode::FOUND);
    let q = location_query(&resp);
    assert_eq!(pair(&q, "error"), Some("access_denied"));
    assert_eq!(pair(&q, "state"), Some("csrf-123 & more"));

    let resp = h
        .http
        .post(h.standin.authorize_url())
        .form(&consent_form(
            "allow",
            "openid offline_access accounting.transactions",
        ))
        .send()
        .await
        .expect("broad scope");
    let q = location_query(&resp);
    assert_eq!(
        pair(&q, "error"),
        Some("invalid_scope"),
        "a new app cannot ask for broad scopes"
    );

    let resp = h
        .http
        .post(h.standin.authorize_url())
        .form(&consent_form("allow", RECOMMENDED_SCOPES))
        .send()
        .await
        .expect("allow");
    let code = pair(&location_query(&resp), "code")
        .expect("code")
        .to_owned();
    let exchange = |verifier: &'static str| {
        h.http
            .post(h.standin.token_url())
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier),
            ])
            .send()
    };
    let resp = exchange("the-wrong-verifier-the-wrong-verifier-the-wrong")
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        resp.json::<Value>().await.expect("json")["error"],
        "invalid_grant"
    );
    let resp = exchange(VERIFIER).await.expect("send");
    assert_eq!(
        resp.status(),
        StatusCode::BAD_REQUEST,
        "a code works once, even after a failure"
    );

    let resp = h
        .http
        .post(h.standin.token_url())
        .basic_auth(CLIENT_ID, Some("not-the-secret"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .expect("send");
    assert_eq!(
        resp.json::<Value>().await.expect("json")["error"],
        "invalid_client"
    );
}

#[tokio::test]
async fn revoking_the_refresh_token_or_disconnecting_in_xero_ends_the_connection() {
    let h = harness(quick()).await;
    let t = connect(&h).await;
    let resp = h
        .http
        .post(h.standin.revocation_url())
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("token", t.refresh.as_str())])
        .send()
        .await
        .expect("revoke");
    assert_eq!(resp.status(), StatusCode::OK);
    let (status, body) = get_json(api(&h, &t, Method::GET, "/Organisation")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["Detail"], "AuthenticationUnsuccessful");
    assert_eq!(
        refresh(&h, &t.refresh).await.status(),
        StatusCode::BAD_REQUEST
    );

    let t = connect(&h).await;
    h.standin
        .faults()
        .revoke_grants
        .store(true, Ordering::SeqCst);
    let (status, _) = get_json(api(&h, &t, Method::GET, "/Organisation")).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the user disconnected the app in Xero"
    );
    let body: Value = refresh(&h, &t.refresh).await.json().await.expect("json");
    assert_eq!(body["error"], "invalid_grant");

    // Dropping the one connection keeps the token but not the tenant.
    let t = connect(&h).await;
    let conns: Value = h
        .http
        .get(h.standin.connections_url())
        .bearer_auth(&t.access)
        .send()
        .await
        .expect("connections")
        .json()
        .await
        .expect("json");
    let id = conns[0]["id"].as_str().expect("id");
    let resp = h
        .http
        .delete(format!("{}/{id}", h.standin.connections_url()))
        .bearer_auth(&t.access)
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let (status, body) = get_json(api(&h, &t, Method::GET, "/Organisation")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["Title"], "Forbidden");
}

#[tokio::test]
async fn contacts_are_created_then_updated_by_contact_number_and_names_stay_unique() {
    let h = harness(quick()).await;
    let t = connect(&h).await;
    let id = create_contact(&h, &t, "Acme Trading", "C-000123").await;

    let (status, body) = send_json(
        api(&h, &t, Method::POST, "/Contacts"),
        &json!({ "Contacts": [{ "ContactNumber": "C-000123", "Name": "Acme Trading (Pty) Ltd", "FirstName": "Thandi", "Phones": [{ "PhoneType": "MOBILE", "PhoneNumber": "0821234567", "PhoneCountryCode": "27" }] }] }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let c = &body["Contacts"][0];
    assert_eq!(
        c["ContactID"],
        id.as_str(),
        "found by its ContactNumber, not created anew"
    );
    assert_eq!(c["Name"], "Acme Trading (Pty) Ltd");
    assert_eq!(
        c["EmailAddress"], "accounts@example.co.za",
        "fields not sent are kept"
    );
    assert_eq!(c["StatusAttributeString"], "OK");
    assert!(
        c["UpdatedDateUTC"]
            .as_str()
            .is_some_and(|d| d.starts_with("/Date(") && d.ends_with("+0000)/"))
    );

    let (status, body) = get_json(api(&h, &t, Method::GET, "/Contacts/C-000123")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["Contacts"][0]["FirstName"], "Thandi");
    let (status, body) = get_json(
        api(&h, &t, Method::GET, "/Contacts").query(&[("where", r#"ContactNumber=="C-000123""#)]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["Contacts"].as_array().map(Vec::len), Some(1));
    let (_, body) = get_json(
        api(&h, &t, Method::GET, "/Contacts").query(&[("where", r#"ContactNumber=="C-999999""#)]),
    )
    .await;
    assert_eq!(body["Contacts"], json!([]), "no match is an empty list");

    let resp = api(&h, &t, Method::GET, "/Contacts/C-999999")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        resp.text().await.expect("text"),
        NOT_FOUND_TEXT,
        "Xero's 404 is plain text"
    );

    let (status, body) = send_json(
        api(&h, &t, Method::PUT, "/Contacts"),
        &json!({ "Contacts": [{ "Name": "Acme Trading (Pty) Ltd", "ContactNumber": "C-000456" }] }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["Type"], "ValidationException");
    assert_eq!(
        messages(&body["Elements"][0]),
        [
            "The contact name Acme Trading (Pty) Ltd is already assigned to another contact. The contact name must be unique across all active contacts."
        ]
    );
}

#[tokio::test]
async fn an_inclusive_invoice_backs_out_fifteen_percent_vat_per_line_and_numbers_itself() {
    let h = harness(quick()).await;
    let t = connect(&h).await;
    let contact = create_contact(&h, &t, "Acme Trading", "C-000123").await;
    let resp = api(&h, &t, Method::PUT, "/Invoices")
        .json(&invoice(&contact, 500.00))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.expect("text");
    assert!(text.contains(r#""TotalTax":65.22"#), "{text}");
    assert!(text.contains(r#""SubTotal":434.78"#), "{text}");
    assert!(
        text.contains(r#""Total":500.00"#),
        "money has two decimals: {text}"
    );
    let body: Value = serde_json::from_str(&text).expect("json");
    let inv = &body["Invoices"][0];
    assert_eq!(inv["InvoiceNumber"], "INV-0001");
    assert_eq!(inv["Status"], "AUTHORISED");
    assert_eq!(inv["Reference"], "PORTAL-INV-42");
    assert_eq!(inv["AmountDue"], 500.0);
    assert_eq!(inv["LineItems"][0]["TaxAmount"], 65.22);
    assert_eq!(inv["LineItems"][0]["LineAmount"], 500.0);
    assert_eq!(inv["Date"], "/Date(1785542400000+0000)/");
    assert_eq!(inv["DateString"], "2026-08-01T00:00:00");

    // Per line, then summed: three R 0.10 lines carry 0.01 each, not round(0.30 x 15/115).
    let mut three = invoice(&contact, 0.10);
    let line = three["Invoices"][0]["LineItems"][0].clone();
    three["Invoices"][0]["LineItems"] = json!([line, line, line]);
    let (_, body) = send_json(api(&h, &t, Method::PUT, "/Invoices"), &three).await;
    let inv = &body["Invoices"][0];
    assert_eq!(inv["InvoiceNumber"], "INV-0002");
    assert_eq!(inv["TotalTax"], 0.03);
    assert_eq!(inv["SubTotal"], 0.27);

    let mut exclusive = invoice(&contact, 100.00);
    exclusive["Invoices"][0]["LineAmountTypes"] = json!("Exclusive");
    exclusive["Invoices"][0]["LineItems"][0]["Quantity"] = json!(3);
    let (_, body) = send_json(api(&h, &t, Method::PUT, "/Invoices"), &exclusive).await;
    let inv = &body["Invoices"][0];
    assert_eq!(
        (
            inv["SubTotal"].as_f64(),
            inv["TotalTax"].as_f64(),
            inv["Total"].as_f64()
        ),
        (Some(300.0), Some(45.0), Some(345.0))
    );

    let mut no_tax = invoice(&contact, 100.00);
    no_tax["Invoices"][0]["LineAmountTypes"] = json!("NoTax");
    no_tax["Invoices"][0]["Status"] = json!("DRAFT");
    let (_, body) = send_json(api(&h, &t, Method::PUT, "/Invoices"), &no_tax).await;
    let inv = &body["Invoices"][0];
    assert_eq!(inv["TotalTax"], 0.0);
    assert_eq!(inv["Status"], "DRAFT");
    assert_eq!(inv["LineItems"][0]["TaxType"], "NONE");

    let id = body["Invoices"][0]["InvoiceID"].as_str().expect("id");
    let (status, body) = get_json(api(&h, &t, Method::GET, &format!("/Invoices/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["Invoices"][0]["InvoiceNumber"], "INV-0004");
    let (_, body) = get_json(
        api(&h, &t, Method::GET, "/TaxRates").query(&[("where", r#"TaxType=="OUTPUT3""#)]),
    )
    .await;
    assert_eq!(body["TaxRates"][0]["Name"], "Standard Rate Sales");
    assert_eq!(body["TaxRates"][0]["EffectiveRate"], 15.0);
    let (_, body) = get_json(
        api(&h, &t, Method::GET, "/Accounts")
            .query(&[("where", r#"Type=="BANK" OR EnablePaymentsToAccount==true"#)]),
    )
    .await;
    let codes: Vec<&str> = body["Accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .filter_map(|a| a["Code"].as_str())
        .collect();
    assert_eq!(codes, ["090", "091", "612"]);
}

#[tokio::test]
async fn a_payment_into_the_bank_account_marks_the_invoice_paid_and_deleting_it_reopens_it() {
    let h = harness(quick()).await;
    let t = connect(&h).await;
    let contact = create_contact(&h, &t, "Acme Trading", "C-000123").await;
    let (_, body) = send_json(
        api(&h, &t, Method::PUT, "/Invoices"),
        &invoice(&contact, 500.00),
    )
    .await;
    let id = body["Invoices"][0]["InvoiceID"]
        .as_str()
        .expect("id")
        .to_owned();
    let pay = |amount: f64| json!({ "Payments": [{ "Invoice": { "InvoiceID": id }, "Account": { "Code": "090" }, "Date": "2026-08-05", "Amount": amount, "Reference": "EFT 12345" }] });

    let (status, body) = send_json(api(&h, &t, Method::PUT, "/Payments"), &pay(200.00)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["Payments"][0]["Invoice"]["AmountDue"], 300.0);
    assert_eq!(body["Payments"][0]["PaymentType"], "ACCRECPAYMENT");
    let (status, body) = send_json(api(&h, &t, Method::PUT, "/Payments"), &pay(300.01)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        messages(&body["Elements"][0]),
        ["Payment amount exceeds the amount outstanding on this document"]
    );
    let (_, body) = send_json(api(&h, &t, Method::PUT, "/Payments"), &pay(300.00)).await;
    let payment_id = body["Payments"][0]["PaymentID"]
        .as_str()
        .expect("id")
        .to_owned();

    let (_, body) = get_json(api(&h, &t, Method::GET, &format!("/Invoices/{id}"))).await;
    let inv = &body["Invoices"][0];
    assert_eq!(inv["Status"], "PAID");
    assert_eq!(inv["AmountDue"], 0.0);
    assert_eq!(inv["AmountPaid"], 500.0);
    assert_eq!(inv["Payments"].as_array().map(Vec::len), Some(2));
    assert!(inv["FullyPaidOnDate"].is_string());

    let (status, body) = send_json(
        api(&h, &t, Method::POST, &format!("/Payments/{payment_id}")),
        &json!({ "Payments": [{ "Status": "DELETED" }] }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["Payments"][0]["Status"], "DELETED");
    let (_, body) = get_json(api(&h, &t, Method::GET, &format!("/Invoices/{id}"))).await;
    assert_eq!(body["Invoices"][0]["Status"], "AUTHORISED");
    assert_eq!(body["Invoices"][0]["AmountDue"], 300.0);

    let mut sales = pay(10.0);
    sales["Payments"][0]["Account"] = json!({ "Code": "200" });
    let (status, _) = send_json(api(&h, &t, Method::PUT, "/Payments"), &sales).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "payments go into a bank or payments-enabled account"
    );
}

#[tokio::test]
async fn a_credit_note_is_numbered_allocated_and_refunded_by_a_payment_against_it() {
    let h = harness(quick()).await;
    let t = connect(&h).await;
    let contact = create_contact(&h, &t, "Acme Trading", "C-000123").await;
    let (_, body) = send_json(
        api(&h, &t, Method::PUT, "/Invoices"),
        &invoice(&contact, 500.00),
    )
    .await;
    let invoice_id = body["Invoices"][0]["InvoiceID"]
        .as_str()
        .expect("id")
        .to_owned();
    let credit = json!({ "CreditNotes": [{
        "Type": "ACCRECCREDIT", "Contact": { "ContactID": contact }, "Date": "2026-08-10",
        "LineAmountTypes": "Inclusive", "Reference": "PORTAL-CN-7", "Status": "AUTHORISED",
        "LineItems": [{ "Description": "Refund: deposit", "Quantity": 1, "UnitAmount": 115.00, "AccountCode": "200", "TaxType": "OUTPUT3" }],
    }]});
    let (status, body) = send_json(api(&h, &t, Method::PUT, "/CreditNotes"), &credit).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cn = &body["CreditNotes"][0];
    assert_eq!(cn["CreditNoteNumber"], "CN-0001");
    assert_eq!(cn["TotalTax"], 15.0);
    assert_eq!(cn["RemainingCredit"], 115.0);
    let cn_id = cn["CreditNoteID"].as_str().expect("id").to_owned();

    let (status, body) = send_json(
        api(&h, &t, Method::PUT, &format!("/CreditNotes/{cn_id}/Allocations")),
        &json!({ "Allocations": [{ "Invoice": { "InvoiceID": invoice_id }, "Amount": 15.00, "Date": "2026-08-10" }] }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = get_json(api(&h, &t, Method::GET, &format!("/Invoices/{invoice_id}"))).await;
    assert_eq!(body["Invoices"][0]["AmountCredited"], 15.0);
    assert_eq!(body["Invoices"][0]["AmountDue"], 485.0);

    let refund = json!({ "Payments": [{ "CreditNote": { "CreditNoteID": cn_id }, "Account": { "Code": "090" }, "Date": "2026-08-11", "Amount": 100.00, "Reference": "Refund EFT" }] });
    let (status, body) = send_json(api(&h, &t, Method::PUT, "/Payments"), &refund).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let p = &body["Payments"][0];
    assert_eq!(p["PaymentType"], "ARCREDITPAYMENT");
    assert_eq!(p["Invoice"]["Type"], "ACCRECCREDIT");
    assert_eq!(p["CreditNote"]["CreditNoteNumber"], "CN-0001");
    let (_, body) = get_json(api(&h, &t, Method::GET, "/CreditNotes/CN-0001")).await;
    assert_eq!(body["CreditNotes"][0]["Status"], "PAID");
    assert_eq!(body["CreditNotes"][0]["RemainingCredit"], 0.0);
    assert_eq!(h.standin.credit_notes().len(), 1);
    assert_eq!(h.standin.payments().len(), 1);
}

#[tokio::test]
async fn an_idempotency_key_replays_the_same_invoice_and_refuses_a_different_body() {
    let h = harness(XeroStandinConfig {
        idempotency_window: Duration::from_secs(60),
        ..quick()
    })
    .await;
    let t = connect(&h).await;
    let contact = create_contact(&h, &t, "Acme Trading", "C-000123").await;
    let key = "portal:tenant:push_invoice:42:1";
    let send = |body: Value| {
        api(&h, &t, Method::PUT, "/Invoices")
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let first: Value = send(invoice(&contact, 500.00))
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let again = send(invoice(&contact, 500.00)).await.expect("send");
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.expect("json");
    assert_eq!(again, first, "the stored response, byte for byte");
    assert_eq!(again["Invoices"][0]["InvoiceNumber"], "INV-0001");
    assert_eq!(h.standin.invoices().len(), 1);

    let other = send(invoice(&contact, 600.00)).await.expect("send");
    assert_eq!(other.status(), StatusCode::BAD_REQUEST);
    let other: Value = other.json().await.expect("json");
    assert!(
        other["Detail"]
            .as_str()
            .is_some_and(|d| d.contains("is used with a different request")),
        "{other}"
    );
    assert!(
        h.standin
            .requests()
            .iter()
            .any(|r| r.note == "idempotent replay")
    );

    h.standin.advance_clock(Duration::from_secs(61));
    let later: Value = send(invoice(&contact, 500.00))
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(
        later["Invoices"][0]["InvoiceNumber"], "INV-0002",
        "past the window the key is new again"
    );
}

#[tokio::test]
async fn validation_errors_come_back_in_xeros_shape() {
    let eoy = time::Date::from_calendar_date(2026, time::Month::February, 28).expect("date");
    let h = harness(XeroStandinConfig {
        end_of_year_lock_date: Some(eoy),
        ..quick()
    })
    .await;
    let t = connect(&h).await;
    let contact = create_contact(&h, &t, "Acme Trading", "C-000123").await;

    let mut locked = invoice(&contact, 500.00);
    locked["Invoices"][0]["Date"] = json!("2026-02-15");
    let (status, body) = send_json(api(&h, &t, Method::PUT, "/Invoices"), &locked).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["ErrorNumber"], 10);
    assert_eq!(body["Type"], "ValidationException");
    assert_eq!(body["Message"], "A validation exception occurred");
    assert_eq!(
        messages(&body["Elements"][0]),
        [
            "The document date cannot be before the end of year lock date, currently set at 28-Feb-2026"
        ]
    );
    let (_, org) = get_json(api(&h, &t, Method::GET, "/Organisation")).await;
    assert!(org["Organisations"][0]["EndOfYearLockDate"].is_string());

    let mut archived = invoice(&contact, 500.00);
    archived["Invoices"][0]["LineItems"][0]["AccountCode"] = json!("4000");
    let (_, body) = send_json(api(&h, &t, Method::PUT, "/Invoices"), &archived).await;
    assert_eq!(
        messages(&body["Elements"][0]),
        [
            "Account code '4000' has been archived, or has been deleted. Each line item must reference a valid account."
        ]
    );
    let mut bad_tax = invoice(&contact, 500.00);
    bad_tax["Invoices"][0]["LineItems"][0]["TaxType"] = json!("INPUT3");
    let (_, body) = send_json(api(&h, &t, Method::PUT, "/Invoices"), &bad_tax).await;
    assert_eq!(
        messages(&body["Elements"][0]),
        ["The TaxType code INPUT3 does not exist or cannot be used for this type of transaction."]
    );
    let mut no_contact = invoice(&contact, 500.00);
    no_contact["Invoices"][0]
        .as_object_mut()
        .expect("object")
        .remove("Contact");
    let (_, body) = send_json(api(&h, &t, Method::PUT, "/Invoices"), &no_contact).await;
    assert_eq!(
        messages(&body["Elements"][0]),
        ["A Contact must be specified for this type of transaction"]
    );
    assert!(
        h.standin.invoices().is_empty(),
        "nothing is saved when the call fails"
    );

    // summarizeErrors=false: 200, every element in order, each with its own status.
    let mut batch = invoice(&contact, 500.00);
    let good = batch["Invoices"][0].clone();
    batch["Invoices"] = json!([good, bad_tax["Invoices"][0], good]);
    let (status, body) = send_json(
        api(&h, &t, Method::PUT, "/Invoices").query(&[("summarizeErrors", "false")]),
        &batch,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let statuses: Vec<&str> = body["Invoices"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|i| i["StatusAttributeString"].as_str())
        .collect();
    assert_eq!(statuses, ["OK", "ERROR", "OK"]);
    assert_eq!(body["Invoices"][1]["HasErrors"], true);
    assert_eq!(messages(&body["Invoices"][1]).len(), 1);
    let numbers: Vec<&str> = body["Invoices"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|i| i["InvoiceNumber"].as_str())
        .collect();
    assert_eq!(
        numbers,
        ["INV-0001", "INV-0002"],
        "only the good ones are numbered"
    );
    assert_eq!(h.standin.invoices().len(), 2);

    let resp = api(&h, &t, Method::PUT, "/Invoices")
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        resp.json::<Value>().await.expect("json")["Type"],
        "PostDataInvalidException"
    );
}

#[tokio::test]
async fn the_minute_limit_answers_429_with_retry_after_and_every_response_carries_the_counts() {
    let h = harness(XeroStandinConfig {
        minute_limit: 3,
        day_limit: 5,
        ..quick()
    })
    .await;
    let t = connect(&h).await;
    for expected_left in [2, 1, 0] {
        let resp = api(&h, &t, Method::GET, "/Organisation")
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()["x-minlimit-remaining"],
            expected_left.to_string().as_str()
        );
        assert!(resp.headers().contains_key("x-daylimit-remaining"));
        assert!(resp.headers().contains_key("x-appminlimit-remaining"));
    }
    let resp = api(&h, &t, Method::GET, "/Organisation")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["x-rate-limit-problem"], "minute");
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(resp.headers()["x-minlimit-remaining"], "0");

    h.standin.advance_clock(Duration::from_secs(61));
    let ok = api(&h, &t, Method::GET, "/Organisation")
        .send()
        .await
        .expect("send");
    assert_eq!(ok.status(), StatusCode::OK, "the rolling minute has passed");
    assert_eq!(ok.headers()["x-daylimit-remaining"], "1");
    let _ = api(&h, &t, Method::GET, "/Organisation")
        .send()
        .await
        .expect("send");
    let resp = api(&h, &t, Method::GET, "/Organisation")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["x-rate-limit-problem"], "day");
    assert!(
        h.standin
            .requests()
            .iter()
            .any(|r| r.status == 429 && r.note == "429 day")
    );
}

#[tokio::test]
async fn more_than_five_calls_in_flight_are_refused_as_concurrent() {
    let h = harness(quick()).await;
    let t = connect(&h).await;
    h.standin.faults().delay_ms.store(600, Ordering::SeqCst);
    let calls: Vec<_> = (0..7)
        .map(|_| api(&h, &t, Method::GET, "/Organisation").send())
        .collect();
    let results = futures_util::future::join_all(calls).await;
    let statuses: Vec<u16> = results
        .into_iter()
        .map(|r| r.expect("send").status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        2,
        "{statuses:?}"
    );
    assert!(
        h.standin
            .requests()
            .iter()
            .any(|r| r.note == "429 concurrent")
    );
}

#[tokio::test]
async fn editing_an_invoice_in_xero_bumps_updated_date_utc_and_if_modified_since_finds_it() {
    let h = harness(quick()).await;
    let t = connect(&h).await;
    let contact = create_contact(&h, &t, "Acme Trading", "C-000123").await;
    let (_, body) = send_json(
        api(&h, &t, Method::PUT, "/Invoices"),
        &invoice(&contact, 500.00),
    )
    .await;
    let pushed = body["Invoices"][0].clone();
    let id = pushed["InvoiceID"].as_str().expect("id").to_owned();

    h.standin.advance_clock(Duration::from_secs(5));
    let since = {
        let ms = h.standin.now_ms() / 1000 * 1000;
        let secs = ms / 1000;
        let days = secs / 86_400;
        let date = time::Date::from_julian_day((days + 2_440_588) as i32).expect("date");
        format!(
            "{date}T{:02}:{:02}:{:02}",
            secs / 3600 % 24,
            secs / 60 % 60,
            secs % 60
        )
    };
    let (_, body) =
        get_json(api(&h, &t, Method::GET, "/Invoices").header("If-Modified-Since", &since)).await;
    assert_eq!(body["Invoices"], json!([]), "nothing changed since");

    h.standin.advance_clock(Duration::from_secs(5));
    h.standin
        .faults()
        .edit_latest_invoice
        .store(1, Ordering::SeqCst);
    let (_, body) =
        get_json(api(&h, &t, Method::GET, "/Invoices").header("If-Modified-Since", &since)).await;
    let changed = &body["Invoices"][0];
    assert_eq!(changed["InvoiceID"], id.as_str());
    let ms = |v: &Value| -> i64 {
        let s = v.as_str().expect("a date");
        s.trim_start_matches("/Date(")
            .split('+')
            .next()
            .expect("ms")
            .parse()
            .expect("number")
    };
    assert!(ms(&changed["UpdatedDateUTC"]) > ms(&pushed["UpdatedDateUTC"]));
    assert_ne!(changed["DueDate"], pushed["DueDate"]);
    assert!(
        changed.get("LineItems").is_none(),
        "lists without paging leave the lines out, as Xero does"
    );
    let (_, body) = get_json(api(&h, &t, Method::GET, &format!("/Invoices/{id}"))).await;
    assert!(
        body["Invoices"][0]["LineItems"][0]["Description"]
            .as_str()
            .is_some_and(|d| d.ends_with("(edited in Xero)"))
    );

    let edited = h
        .standin
        .edit_invoice_in_xero("INV-0001", XeroEdit::Amount(57_500))
        .expect("edit");
    assert_eq!(edited["Total"], 575.0);
    assert_eq!(edited["TotalTax"], 75.0);
    let voided = h
        .standin
        .edit_invoice_in_xero(&id, XeroEdit::Void)
        .expect("void");
    assert_eq!(voided["Status"], "VOIDED");
}

#[tokio::test]
async fn faults_take_the_api_down_fail_calls_storm_429s_and_force_a_validation_error() {
    let h = harness(quick()).await;
    let t = connect(&h).await;
    let f = h.standin.faults().clone();
    f.api_down.store(true, Ordering::SeqCst);
    let resp = api(&h, &t, Method::GET, "/Organisation")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    f.reset();
    f.fail_next.store(1, Ordering::SeqCst);
    assert_eq!(
        api(&h, &t, Method::GET, "/Organisation")
            .send()
            .await
            .expect("send")
            .status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        api(&h, &t, Method::GET, "/Organisation")
            .send()
            .await
            .expect("send")
            .status(),
        StatusCode::OK
    );
    f.rate_limit_next.store(2, Ordering::SeqCst);
    f.retry_after_secs.store(7, Ordering::SeqCst);
    for _ in 0..2 {
        let resp = api(&h, &t, Method::GET, "/Organisation")
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()["retry-after"], "7");
    }
    assert_eq!(
        api(&h, &t, Method::GET, "/Organisation")
            .send()
            .await
            .expect("send")
            .status(),
        StatusCode::OK
    );

    let contact = create_contact(&h, &t, "Acme Trading", "C-000123").await;
    f.fail_next_invoice_validation.store(1, Ordering::SeqCst);
    let (status, body) = send_json(
        api(&h, &t, Method::PUT, "/Invoices"),
        &invoice(&contact, 500.00),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(messages(&body["Elements"][0]), [FORCED_VALIDATION_MESSAGE]);
    let (status, _) = send_json(
        api(&h, &t, Method::PUT, "/Invoices"),
        &invoice(&contact, 500.00),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "only the next invoice");
    assert_eq!(f.describe(), "normal");
}

#[tokio::test]
async fn calls_without_json_a_tenant_a_scope_or_a_live_token_are_refused_as_xero_refuses_them() {
    let h = harness(quick()).await;
    let t = connect(&h).await;
    let resp = h
        .http
        .get(format!("{}/Organisation", h.standin.api_url()))
        .bearer_auth(&t.access)
        .header("xero-tenant-id", TENANT_ID)
        .send()
        .await
        .expect("send");
    assert_eq!(
        resp.status(),
        StatusCode::NOT_ACCEPTABLE,
        "without Accept: application/json"
    );
    let resp = h
        .http
        .get(format!("{}/Organisation", h.standin.api_url()))
        .bearer_auth(&t.access)
        .header("Accept", "application/json")
        .send()
        .await
        .expect("send");
    assert_eq!(
        resp.status(),
        StatusCode::FORBIDDEN,
        "without xero-tenant-id"
    );
    h.standin.expire_access_tokens();
    let (status, body) = get_json(api(&h, &t, Method::GET, "/Organisation")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["Detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("TokenExpired: token expired at ")),
        "{body}"
    );
    let resp = api(&h, &t, Method::GET, "/Nothing")
        .send()
        .await
        .expect("send");
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "authentication comes first"
    );

    // A token for contacts only cannot touch invoices.
    let resp = h
        .http
        .post(h.standin.authorize_url())
        .form(&consent_form(
            "allow",
            "openid offline_access accounting.contacts.read",
        ))
        .send()
        .await
        .expect("consent");
    let code = pair(&location_query(&resp), "code")
        .expect("code")
        .to_owned();
    let body: Value = h
        .http
        .post(h.standin.token_url())
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT_ID),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .expect("PKCE exchange without a secret")
        .json()
        .await
        .expect("json");
    let narrow = Tokens {
        access: body["access_token"].as_str().expect("access").into(),
        refresh: String::new(),
    };
    assert_eq!(
        get_json(api(&h, &narrow, Method::GET, "/Contacts")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        get_json(api(&h, &narrow, Method::GET, "/Invoices")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send_json(
            api(&h, &narrow, Method::PUT, "/Contacts"),
            &json!({"Contacts": []})
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn the_admin_page_lists_the_books_and_the_state_file_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("xero-standin-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let state = dir.join("xero.json");
    let cfg = XeroStandinConfig {
        state_file: Some(state.clone()),
        ..quick()
    };
    let refresh_token = {
        let h = harness(cfg.clone()).await;
        let t = connect(&h).await;
        let contact = create_contact(&h, &t, "Acme <Trading>", "C-000123").await;
        let (_, _) = send_json(
            api(&h, &t, Method::PUT, "/Invoices"),
            &invoice(&contact, 500.00),
        )
        .await;
        let html = h
            .http
            .get(format!("{}/_standin", h.standin.base_url()))
            .send()
            .await
            .expect("page")
            .text()
            .await
            .expect("html");
        assert!(
            html.contains("INV-0001") && html.contains("R 65.22") && html.contains("AUTHORISED"),
            "{html}"
        );
        assert!(html.contains("Acme &lt;Trading&gt;"), "escaped");
        assert!(html.contains("/Invoices"), "recent requests are listed");
        t.refresh
    };
    let h = harness(cfg).await;
    assert_eq!(h.standin.invoices().len(), 1);
    assert_eq!(h.standin.contacts().len(), 1);
    let resp = refresh(&h, &refresh_token).await;
    assert_eq!(resp.status(), StatusCode::OK, "grants survive a restart");
    let _ = std::fs::remove_dir_all(&dir);
}

async fn put_invoice(h: &Harness, t: &Tokens, body: Value) -> (StatusCode, Value) {
    send_json(api(h, t, Method::PUT, "/Invoices"), &body).await
}

/// A message of `fixtures/xero_messages.json`, placeholders filled in.
fn fixture(key: &str, subs: &[(&str, &str)]) -> String {
    let all: Value =
        serde_json::from_str(include_str!("fixtures/xero_messages.json")).expect("fixture json");
    let mut text = all["messages"][key]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no fixture {key}"))
        .to_owned();
    for (from, to) in subs {
        text = text.replace(from, to);
    }
    text
}

#[tokio::test]
async fn every_validation_message_is_produced_as_the_fixture_writes_it() {
    let eoy = time::Date::from_calendar_date(2026, time::Month::February, 28).expect("date");
    let period = time::Date::from_calendar_date(2026, time::Month::June, 30).expect("date");
    let h = harness(quick()).await;
    h.standin.set_lock_dates(Some(eoy), Some(period));
    let t = connect(&h).await;
    let contact = create_contact(&h, &t, "Acme Trading", "C-000123").await;
    let first = |body: &Value| messages(&body["Elements"][0]);
    let with = |path: &[&str], v: Value| {
        let mut inv = invoice(&contact, 500.00);
        let mut at = &mut inv["Invoices"][0];
        for p in &path[..path.len() - 1] {
            at = match p.parse::<usize>() {
                Ok(i) => &mut at[i],
                Err(_) => &mut at[*p],
            };
        }
        at[path[path.len() - 1]] = v;
        inv
    };

    let (_, b) = put_invoice(&h, &t, with(&["Date"], json!("2026-06-30"))).await;
    assert_eq!(
        first(&b),
        [fixture("period_lock", &[("{date}", "30-Jun-2026")])]
    );
    let (_, b) = put_invoice(&h, &t, with(&["Date"], json!("2026-01-31"))).await;
    assert_eq!(
        first(&b),
        [fixture("end_of_year_lock", &[("{date}", "28-Feb-2026")])]
    );
    let (_, b) = put_invoice(
        &h,
        &t,
        with(&["LineItems", "0", "AccountCode"], json!("090")),
    )
    .await;
    assert_eq!(
        first(&b),
        [fixture("invalid_account", &[("{code}", "090")])]
    );
    let (_, b) = put_invoice(
        &h,
        &t,
        with(&["LineItems", "0", "AccountCode"], json!("4000")),
    )
    .await;
    assert_eq!(
        first(&b),
        [fixture("archived_account", &[("{code}", "4000")])]
    );
    let (_, b) = put_invoice(
        &h,
        &t,
        with(&["LineItems", "0", "TaxType"], json!("OUTPUT9")),
    )
    .await;
    assert_eq!(
        first(&b),
        [fixture("invalid_tax_type", &[("{code}", "OUTPUT9")])]
    );
    let (_, b) = put_invoice(
        &h,
        &t,
        with(&["LineItems", "0", "AccountCode"], Value::Null),
    )
    .await;
    assert_eq!(first(&b), [fixture("missing_account", &[])]);
    let (_, b) = put_invoice(&h, &t, with(&["CurrencyCode"], json!("EUR"))).await;
    assert_eq!(
        first(&b),
        [fixture("currency_not_subscribed", &[("{code}", "EUR")])]
    );
    let (_, b) = put_invoice(&h, &t, with(&["DueDate"], Value::Null)).await;
    assert_eq!(first(&b), [fixture("due_date_missing", &[])]);
    let (_, b) = put_invoice(&h, &t, with(&["Contact"], json!({}))).await;
    assert_eq!(first(&b), [fixture("missing_contact", &[])]);

    let (status, b) = put_invoice(&h, &t, with(&["InvoiceNumber"], json!("INV-0100"))).await;
    assert_eq!(status, StatusCode::OK, "{b}");
    let paid_id = b["Invoices"][0]["InvoiceID"]
        .as_str()
        .expect("id")
        .to_owned();
    let (_, b) = put_invoice(&h, &t, with(&["InvoiceNumber"], json!("INV-0100"))).await;
    assert_eq!(first(&b), [fixture("invoice_number_unique", &[])]);

    let pay = |id: &str, amount: f64| json!({ "Payments": [{ "Invoice": { "InvoiceID": id }, "Account": { "Code": "612" }, "Date": "2026-08-05", "Amount": amount }] });
    let (status, _) = send_json(api(&h, &t, Method::PUT, "/Payments"), &pay(&paid_id, 100.0)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the clearing account takes payments"
    );
    let (_, b) = send_json(
        api(&h, &t, Method::POST, &format!("/Invoices/{paid_id}")),
        &json!({ "Invoices": [{ "LineItems": [{ "Description": "More", "Quantity": 1, "UnitAmount": 900.0, "AccountCode": "200" }] }] }),
    )
    .await;
    assert_eq!(first(&b), [fixture("encumbered", &[])]);
    let (_, _) = send_json(api(&h, &t, Method::PUT, "/Payments"), &pay(&paid_id, 400.0)).await;
    let (_, b) = send_json(
        api(&h, &t, Method::POST, &format!("/Invoices/{paid_id}")),
        &json!({ "Invoices": [{ "Reference": "changed" }] }),
    )
    .await;
    assert_eq!(first(&b), [fixture("invoice_not_modifiable", &[])]);
    let (_, b) = send_json(api(&h, &t, Method::PUT, "/Payments"), &pay(&paid_id, 1.0)).await;
    assert_eq!(first(&b), [fixture("payment_not_authorised", &[])]);

    let (_, b) = send_json(
        api(&h, &t, Method::PUT, "/Contacts"),
        &json!({ "Contacts": [{ "Name": "  " }, { "Name": "Acme Trading" }, { "Name": "Beta", "AccountNumber": "A1" }, { "Name": "Gamma", "AccountNumber": "A1" }] }),
    )
    .await;
    let all: Vec<Vec<String>> = b["Elements"]
        .as_array()
        .expect("elements")
        .iter()
        .map(messages)
        .collect();
    assert_eq!(
        all,
        [
            vec![fixture("contact_name_empty", &[])],
            vec![fixture(
                "duplicate_contact_name",
                &[("{name}", "Acme Trading")]
            )],
            vec![fixture("duplicate_account_number", &[])],
        ],
        "only the failing elements, each with its messages"
    );
    let (_, _) = send_json(
        api(&h, &t, Method::POST, "/Contacts"),
        &json!({ "Contacts": [{ "ContactNumber": "C-000123", "ContactStatus": "ARCHIVED" }] }),
    )
    .await;
    let (_, b) = put_invoice(&h, &t, invoice(&contact, 10.0)).await;
    assert_eq!(first(&b), [fixture("contact_archived", &[])]);

    h.standin
        .faults()
        .fail_next_invoice_validation
        .store(1, Ordering::SeqCst);
    let (_, b) = put_invoice(&h, &t, invoice(&contact, 10.0)).await;
    assert!(first(&b).contains(&fixture("approve_limit", &[])));

    // Both token paths work: Xero's identity host's and the one under /identity.
    let resp = h
        .http
        .post(format!("{}/identity/connect/token", h.standin.base_url()))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", t.refresh.as_str()),
        ])
        .send()
        .await
        .expect("refresh");
    assert_eq!(resp.status(), StatusCode::OK);
    let discovery: Value = h
        .http
        .get(format!(
            "{}/.well-known/openid-configuration",
            h.standin.base_url()
        ))
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .expect("json");
    assert_eq!(discovery["token_endpoint"], h.standin.token_url().as_str());
}

fn xero_signature(key: &str, body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn changes_by_the_portal_and_in_xero_arrive_as_signed_webhooks() {
    let shutdown = CancellationToken::new();
    let receiver = common::Receiver::start(&shutdown).await;
    let h = harness(XeroStandinConfig {
        webhook_url: Some(receiver.url.clone()),
        ..quick()
    })
    .await;
    let t = connect(&h).await;
    let contact = create_contact(&h, &t, "Acme Trading", "C-000123").await;
    let (_, body) = send_json(
        api(&h, &t, Method::PUT, "/Invoices"),
        &invoice(&contact, 500.00),
    )
    .await;
    let invoice_id = body["Invoices"][0]["InvoiceID"]
        .as_str()
        .expect("id")
        .to_owned();
    h.standin
        .faults()
        .edit_latest_invoice
        .store(1, Ordering::SeqCst);
    assert!(
        receiver.wait_for(3, Duration::from_secs(5)).await,
        "three payloads"
    );
    let got = receiver.got();
    let events: Vec<Value> = got
        .iter()
        .map(|r| {
            let signature = r.header("x-xero-signature").expect("signed");
            assert_eq!(
                signature,
                xero_signature(standins::xero::WEBHOOK_KEY, &r.body)
            );
            serde_json::from_slice(&r.body).expect("json")
        })
        .collect();
    let summary: Vec<(String, String, String)> = events
        .iter()
        .flat_map(|p| p["events"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            (
                e["eventCategory"].as_str().unwrap_or_default().to_owned(),
                e["eventType"].as_str().unwrap_or_default().to_owned(),
                e["resourceId"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("CONTACT".to_owned(), "CREATE".to_owned(), contact.clone()),
            (
                "INVOICE".to_owned(),
                "CREATE".to_owned(),
                invoice_id.clone()
            ),
            (
                "INVOICE".to_owned(),
                "UPDATE".to_owned(),
                invoice_id.clone()
            ),
        ]
    );
    let e = &events[2]["events"][0];
    assert_eq!(e["tenantId"], TENANT_ID);
    assert_eq!(e["tenantType"], "ORGANISATION");
    assert_eq!(
        e["resourceUrl"],
        format!("{}/Invoices/{invoice_id}", h.standin.api_url()).as_str()
    );
    assert_eq!(events[2]["firstEventSequence"], 3);
    assert_eq!(events[2]["lastEventSequence"], 3);
}

#[tokio::test]
async fn intent_to_receive_passes_only_a_url_that_checks_the_signature() {
    use axum::http::{HeaderMap, StatusCode as S};
    async fn verify(headers: HeaderMap, body: axum::body::Bytes) -> S {
        let sent = headers
            .get("x-xero-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if sent == xero_signature(standins::xero::WEBHOOK_KEY, &body) {
            S::OK
        } else {
            S::UNAUTHORIZED
        }
    }
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/xero", listener.local_addr().expect("addr"));
    let app = axum::Router::new().route("/xero", axum::routing::post(verify));
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
    });
    let h = harness(XeroStandinConfig {
        webhook_url: Some(url),
        ..quick()
    })
    .await;
    let report = h.standin.intent_to_receive().await.expect("sent");
    assert!(report.passed, "{report:?}");
    assert_eq!(report.attempts.len(), 4);

    let careless = common::Receiver::start(&shutdown).await;
    h.standin.set_webhook_url(Some(careless.url.clone()));
    let report = h.standin.intent_to_receive().await.expect("sent");
    assert!(
        !report.passed,
        "answering 200 to a bad signature fails the check"
    );
    shutdown.cancel();
}
