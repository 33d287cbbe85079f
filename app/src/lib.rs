//! Stoep's shared UI: the HTML shell, the router, the pages and the server functions they call.
//! Server-only code lives in [`ssr`], compiled only with the `ssr` feature.
#![recursion_limit = "256"]

pub mod api;
pub mod components;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod ssr;

use leptos::prelude::*;
use leptos_meta::{Link, MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{SsrMode, path};

use crate::components::Layout;
use crate::pages::{
    account, admin, auth, booking, dashboard, documents, home, map, not_found::NotFound, payments,
    security, setup,
};

/// The HTML document around every page, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        content_security_policy();
        crate::ssr::guard::provide_user_memo();
    }
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// A per-response nonce for the hydration scripts, and the Content-Security-Policy that allows
/// only scripts carrying it (plus what they load: `strict-dynamic`), the portal's own styles,
/// and the wasm module. Forms may post to the portal and be redirected to the payment page.
#[cfg(feature = "ssr")]
fn content_security_policy() {
    leptos::nonce::provide_nonce();
    let (Some(nonce), Some(res)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) else {
        return;
    };
    let checkout = use_context::<crate::ssr::AppState>()
        .map(|s| s.settings.checkout_origin.clone())
        .unwrap_or_default();
    let policy = format!(
        "default-src 'self'; script-src 'nonce-{nonce}' 'strict-dynamic' 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self' data: https:; connect-src 'self'; font-src 'self'; form-action 'self' {checkout}; \
         frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    );
    if let Ok(v) = http::HeaderValue::from_str(&policy) {
        res.insert_header(http::header::CONTENT_SECURITY_POLICY, v);
    }
}

/// The application: routes inside the base layout. Every page renders in `SsrMode::Async`: the
/// server waits for the page's data and sends complete HTML, so pages work without JavaScript
/// and can answer with the right status (404 for what the caller may not see).
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/stoep.css" />
        <Stylesheet id="brand" href="/brand.css" />
        <Link rel="icon" href="/favicon.svg" type_="image/svg+xml" />
        <Title formatter=|t: String| if t.is_empty() { "Stoep".to_string() } else { format!("{t} · Stoep") } />
        <Router>
            <Layout>
                <Routes fallback=NotFound>
                    <Route path=path!("/") view=home::HomePage ssr=SsrMode::Async />
                    <Route path=path!("/signin") view=auth::SignInPage ssr=SsrMode::Async />
                    <Route path=path!("/signup") view=auth::SignUpPage ssr=SsrMode::Async />
                    <Route path=path!("/signup/done") view=auth::SignUpDonePage ssr=SsrMode::Async />
                    <Route path=path!("/verify-email") view=auth::VerifyEmailPage ssr=SsrMode::Async />
                    <Route path=path!("/privacy") view=home::PrivacyPage ssr=SsrMode::Async />
                    <Route path=path!("/account") view=account::AccountPage ssr=SsrMode::Async />
                    <Route path=path!("/account/security") view=security::SecurityPage ssr=SsrMode::Async />
                    <Route path=path!("/signin/verify") view=security::SignInVerifyPage ssr=SsrMode::Async />
                    <Route path=path!("/accept-invitation") view=security::AcceptInvitationPage ssr=SsrMode::Async />
                    <Route path=path!("/forgot-password") view=account::ForgotPasswordPage ssr=SsrMode::Async />
                    <Route path=path!("/forgot-password/sent") view=account::ForgotPasswordSentPage ssr=SsrMode::Async />
                    <Route path=path!("/reset-password") view=account::ResetPasswordPage ssr=SsrMode::Async />
                    <Route path=path!("/confirm-email-change") view=account::ConfirmEmailChangePage ssr=SsrMode::Async />
                    <Route path=path!("/admin/people") view=admin::PeoplePage ssr=SsrMode::Async />
                    <Route path=path!("/admin/setup") view=setup::SetupPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/bookings") view=setup::AdminBookingsPage ssr=SsrMode::Async />
                    <Route path=path!("/book") view=booking::ServicesPage ssr=SsrMode::Async />
                    <Route path=path!("/book/:service") view=booking::SlotsPage ssr=SsrMode::Async />
                    <Route path=path!("/book/:service/confirm") view=booking::ConfirmBookingPage ssr=SsrMode::Async />
                    <Route path=path!("/bookings") view=booking::MyBookingsPage ssr=SsrMode::Async />
                    <Route path=path!("/dashboard") view=dashboard::DashboardPage ssr=SsrMode::Async />
                    <Route path=path!("/bookings/:id") view=booking::BookingPage ssr=SsrMode::Async />
                    <Route path=path!("/bookings/:id/move") view=booking::MoveBookingPage ssr=SsrMode::Async />
                    <Route path=path!("/bookings/:id/paid") view=payments::PaymentReturnPage ssr=SsrMode::Async />
                    <Route path=path!("/payments") view=payments::MyPaymentsPage ssr=SsrMode::Async />
                    <Route path=path!("/payments/:id") view=payments::PaymentPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/payments") view=payments::AdminPaymentsPage ssr=SsrMode::Async />
                    <Route path=path!("/staff") view=booking::StaffPage ssr=SsrMode::Async />
                    <Route path=path!("/documents") view=documents::MyDocumentsPage ssr=SsrMode::Async />
                    <Route path=path!("/customers") view=documents::CustomersPage ssr=SsrMode::Async />
                    <Route path=path!("/customers/:id") view=documents::CustomerPage ssr=SsrMode::Async />
                    <Route path=path!("/admin") view=admin::OverviewPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/integrations") view=admin::IntegrationsPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/integrations/jobs/:id") view=admin::JobPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/integrations/map") view=map::MapPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/integrations/runbooks/:name") view=map::RunbookPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/mail") view=admin::MailPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/audit") view=admin::AuditPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/access") view=admin::AccessPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/standins") view=admin::StandinsPage ssr=SsrMode::Async />
                </Routes>
            </Layout>
        </Router>
    }
}
