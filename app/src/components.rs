//! The base layout and small building blocks used by every page.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_location;

use crate::api::auth::SignOut;
use crate::api::site::get_site_info;
use model::error::AppError;
use model::{Role, SiteInfo};

/// The site information for the current navigation, shared with pages through context.
pub type SiteResource = Resource<Result<SiteInfo, AppError>>;

/// Header with the business's name and navigation by role, the admin alert banner, the page,
/// and a footer.
#[component]
pub fn Layout(children: Children) -> impl IntoView {
    let location = use_location();
    let sign_out = ServerAction::<SignOut>::new();
    let site: SiteResource = Resource::new(
        move || (location.pathname.get(), sign_out.version().get()),
        |_| get_site_info(),
    );
    provide_context(site);
    view! {
        <a class="skip-link" href="#main">"Skip to content"</a>
        <header class="site-header">
            <Transition fallback=|| view! { <span class="brand">"Stoep"</span> }>
                {move || Suspend::new(async move {
                    let info = site.await.ok();
                    let name = info.as_ref().map(|i| i.branding.business_name.clone()).unwrap_or_else(|| "Stoep".into());
                    let user = info.as_ref().and_then(|i| i.user.clone());
                    let alert = info.as_ref().and_then(|i| i.admin_alert.clone());
                    view! {
                        <div class="header-inner">
                            <A href="/" attr:class="brand">{name}</A>
                            <nav aria-label="Main">
                                <ul class="nav">
                                    {match user.as_ref().map(|u| u.role) {
                                        Some(Role::Admin) => view! {
                                            <li><A href="/admin">"Overview"</A></li>
                                            <li><A href="/admin/bookings">"Bookings"</A></li>
                                            <li><A href="/admin/payments">"Payments"</A></li>
                                            <li><A href="/customers">"Customers"</A></li>
                                            <li><A href="/admin/setup">"Services"</A></li>
                                            <li><A href="/staff">"Week"</A></li>
                                            <li><A href="/admin/integrations">"Integrations"</A></li>
                                            <li><A href="/admin/mail">"Mail"</A></li>
                                            <li><A href="/admin/people">"People"</A></li>
                                            <li><A href="/admin/audit">"Audit log"</A></li>
                                            <li><A href="/admin/access">"Data access"</A></li>
                                        }.into_any(),
                                        Some(Role::Staff) => view! {
                                            <li><A href="/staff">"My week"</A></li>
                                            <li><A href="/customers">"Customers"</A></li>
                                            <li><A href="/account">"My account"</A></li>
                                            <li><A href="/account/security">"Security"</A></li>
                                        }.into_any(),
                                        Some(Role::Customer) => view! {
                                            <li><A href="/dashboard">"Home"</A></li>
                                            <li><A href="/book">"Book"</A></li>
                                            <li><A href="/bookings">"My bookings"</A></li>
                                            <li><A href="/payments">"Payments"</A></li>
                                            <li><A href="/documents">"Documents"</A></li>
                                            <li><A href="/account">"My account"</A></li>
                                            <li><A href="/account/security">"Security"</A></li>
                                        }.into_any(),
                                        None => view! {
                                            <li><A href="/book">"Book"</A></li>
                                            <li><A href="/signin">"Sign in"</A></li>
                                            <li><A href="/signup">"Create account"</A></li>
                                        }.into_any(),
                                    }}
                                </ul>
                            </nav>
                            {user.map(|u| view! {
                                <div class="who">
                                    <span class="who-name">{u.name}</span>
                                    <ActionForm action=sign_out attr:class="inline-form">
                                        <button type="submit" class="btn btn-link">"Sign out"</button>
                                    </ActionForm>
                                </div>
                            })}
                        </div>
                        {alert.map(|a| view! {
                            <div class="banner banner-alert" role="alert">
                                <strong>"Needs attention: "</strong>{a}" "
                                <A href="/admin/integrations?status=failed">"Open integration health"</A>
                            </div>
                        })}
                    }
                })}
            </Transition>
        </header>
        <main id="main" class="container">{children()}</main>
        <footer class="site-footer">
            <div class="container">
                <A href="/privacy">"Privacy notice"</A>
                <span>" · Powered by Stoep"</span>
            </div>
        </footer>
    }
}

/// Shows a server function's error in plain words, announced to screen readers.
#[component]
pub fn ErrorMessage(#[prop(into)] error: Signal<Option<String>>) -> impl IntoView {
    view! {
        <Show when=move || error.get().is_some()>
            <p class="alert alert-error" role="alert">{move || error.get()}</p>
        </Show>
    }
}

/// The error of the last submission of `action`, if it failed.
pub fn action_error<I, O>(action: ServerAction<I>) -> Signal<Option<String>>
where
    I: leptos::server_fn::ServerFn<Output = O, Error = AppError> + Clone + Send + Sync + 'static,
    O: Clone + Send + Sync + 'static,
{
    Signal::derive(move || {
        action
            .value()
            .get()
            .and_then(|r| r.err())
            .map(|e| e.to_string())
    })
}

/// Loads a page's data and shows a calm message if it fails. On the server this is also where
/// a page gets its HTTP status from the error (as `/api` answers do, in the server's middleware):
/// 401 for a visitor, 404 for what the caller may not see, and so on.
pub fn load_error(err: &AppError) -> AnyView {
    #[cfg(feature = "ssr")]
    if let Some(res) = use_context::<leptos_axum::ResponseOptions>()
        && let Ok(code) = http::StatusCode::from_u16(err.status())
    {
        res.set_status(code);
    }
    match err {
        AppError::Unauthenticated => view! {
            <div class="empty">
                <p>"Please sign in to see this page."</p>
                <A href="/signin" attr:class="btn btn-primary">"Sign in"</A>
            </div>
        }
        .into_any(),
        AppError::NotFound => view! { <crate::pages::not_found::NotFound /> }.into_any(),
        AppError::PasswordChangeRequired => view! {
            <div class="empty">
                <p>{AppError::PasswordChangeRequired.to_string()}</p>
                <A href="/account" attr:class="btn btn-primary">"Choose my password"</A>
            </div>
        }
        .into_any(),
        AppError::SecondFactorRequired => view! {
            <div class="empty">
                <p>{AppError::SecondFactorRequired.to_string()}</p>
                <A href="/account/security" attr:class="btn btn-primary">"Set up two-step verification"</A>
            </div>
        }
        .into_any(),
        other => view! { <p class="alert alert-error" role="alert">{other.to_string()}</p> }.into_any(),
    }
}

/// A coloured badge for a status word.
#[component]
pub fn Badge(#[prop(into)] text: String) -> impl IntoView {
    let class = match text.as_str() {
        "healthy" | "succeeded" | "sent" | "resolved" | "paid" | "confirmed" => "badge badge-ok",
        "degraded"
        | "queued"
        | "running"
        | "retrying"
        | "waiting for payment"
        | "processing"
        | "awaiting_deposit"
        | "pending"
        | "partly refunded"
        | "refunded" => "badge badge-warn",
        "failing" | "manual_review" | "in review" | "failed" | "cancelled" => "badge badge-bad",
        _ => "badge",
    };
    let label = text.replace('_', " ");
    view! { <span class=class>{label}</span> }
}
