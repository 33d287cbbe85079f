//! A signed-in user's account page, and the password-reset and email-change pages.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;

use crate::api::account::*;
use crate::components::{ErrorMessage, action_error, load_error};
use model::format_ms;

/// Shows "Saved." after a successful submission of `action`.
fn saved<I, O>(action: ServerAction<I>, text: &'static str) -> impl IntoView
where
    I: leptos::server_fn::ServerFn<Output = O, Error = model::error::AppError>
        + Clone
        + Send
        + Sync
        + 'static,
    O: Clone + Send + Sync + 'static,
{
    move || {
        action
            .value()
            .get()
            .and_then(|r| r.ok())
            .map(|_| view! { <p class="alert alert-success" role="status">{text}</p> })
    }
}

#[component]
pub fn AccountPage() -> impl IntoView {
    let update = ServerAction::<UpdateProfile>::new();
    let change_pw = ServerAction::<ChangePassword>::new();
    let change_email = ServerAction::<RequestEmailChange>::new();
    let profile = Resource::new(move || update.version().get(), |_| get_profile());
    let query = use_query_map();
    let email_changed = move || query.read().get("email_changed").is_some();
    view! {
        <Title text="My account" />
        <Show when=email_changed>
            <p class="alert alert-success" role="status">"Your new email address is confirmed and in use."</p>
        </Show>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match profile.await {
                    Ok(p) => view! {
                        <h1>"Hello, " {p.name.clone()}</h1>
                        {(!p.email_verified).then(|| view! {
                            <p class="alert alert-info">"Please confirm your email address with the link we sent you. Until then you can't book."</p>
                        })}
                        <section class="card">
                            <h2>"Your details"</h2>
                            <ActionForm action=update>
                                <div class="field">
                                    <label for="name">"Full name"</label>
                                    <input id="name" name="name" autocomplete="name" required maxlength="100" value=p.name.clone() />
                                </div>
                                <div class="field">
                                    <label for="phone">"Phone " <span class="muted">"(optional)"</span></label>
                                    <input id="phone" type="tel" name="phone" autocomplete="tel" maxlength="30" value=p.phone.clone().unwrap_or_default() />
                                </div>
                                <div class="field checkbox">
                                    <input id="marketing" type="checkbox" name="marketing" checked=p.marketing_consent />
                                    <label for="marketing">"Send me news and offers."</label>
                                </div>
                                <ErrorMessage error=action_error(update) />
                                {saved(update, "Saved.")}
                                <button type="submit" class="btn btn-primary" disabled=move || update.pending().get()>
                                    {move || if update.pending().get() { "Saving…" } else { "Save my details" }}
                                </button>
                            </ActionForm>
                            <dl class="facts small">
                                <dt>"Email"</dt><dd>{p.email.clone()}</dd>
                                <dt>"Privacy notice accepted"</dt>
                                <dd>{match (p.privacy_notice_version.clone(), p.privacy_accepted_at_ms) {
                                    (Some(v), Some(at)) => format!("version {v}, {}", format_ms(at)),
                                    _ => "not recorded".into(),
                                }}</dd>
                            </dl>
                        </section>
                    }.into_any(),
                    Err(e) => load_error(&e),
                }
            })}
        </Transition>
        <crate::pages::payments::MyMessages />
        <CalendarFeed />
        <YourData />
        <section class="card">
            <h2>"Change your password"</h2>
            <ActionForm action=change_pw>
                <div class="field">
                    <label for="current">"Current password"</label>
                    <input id="current" type="password" name="current" autocomplete="current-password" required />
                </div>
                <div class="field">
                    <label for="new_password">"New password"</label>
                    <input id="new_password" type="password" name="new_password" autocomplete="new-password" required minlength="8" />
                    <p class="hint">"At least 8 characters. Your other devices will be signed out."</p>
                </div>
                <ErrorMessage error=action_error(change_pw) />
                {saved(change_pw, "Your password is changed. Other devices were signed out.")}
                <button type="submit" class="btn" disabled=move || change_pw.pending().get()>"Change password"</button>
            </ActionForm>
        </section>
        <section class="card">
            <h2>"Change your email address"</h2>
            <ActionForm action=change_email>
                <div class="field">
                    <label for="new_email">"New email address"</label>
                    <input id="new_email" type="email" name="new_email" autocomplete="email" required />
                </div>
                <div class="field">
                    <label for="email_password">"Your password"</label>
                    <input id="email_password" type="password" name="password" autocomplete="current-password" required />
                </div>
                <ErrorMessage error=action_error(change_email) />
                {saved(change_email, "Check the new address: the change happens when you open the link we sent there.")}
                <button type="submit" class="btn" disabled=move || change_email.pending().get()>"Send a confirmation link"</button>
            </ActionForm>
        </section>
    }
}

#[component]
pub fn ForgotPasswordPage() -> impl IntoView {
    let action = ServerAction::<RequestPasswordReset>::new();
    view! {
        <Title text="Reset your password" />
        <section class="card narrow">
            <h1>"Reset your password"</h1>
            <p>"Enter your account's email address and we'll send you a link to choose a new password."</p>
            <ActionForm action=action>
                <div class="field">
                    <label for="email">"Email"</label>
                    <input id="email" type="email" name="email" autocomplete="username" required />
                </div>
                <ErrorMessage error=action_error(action) />
                <button type="submit" class="btn btn-primary" disabled=move || action.pending().get()>
                    {move || if action.pending().get() { "Sending…" } else { "Send me a link" }}
                </button>
            </ActionForm>
        </section>
    }
}

#[component]
pub fn ForgotPasswordSentPage() -> impl IntoView {
    view! {
        <Title text="Check your email" />
        <section class="card narrow">
            <h1>"Check your email"</h1>
            <p>"If that address has an account, a link to reset the password is on its way. It works once, for one hour."</p>
            <A href="/signin" attr:class="btn">"Back to sign in"</A>
        </section>
    }
}

#[component]
pub fn ResetPasswordPage() -> impl IntoView {
    let action = ServerAction::<ResetPassword>::new();
    let query = use_query_map();
    let token = move || query.read().get("token").unwrap_or_default();
    view! {
        <Title text="Choose a new password" />
        <section class="card narrow">
            <h1>"Choose a new password"</h1>
            <ActionForm action=action>
                <input type="hidden" name="token" value=token />
                <div class="field">
                    <label for="new_password">"New password"</label>
                    <input id="new_password" type="password" name="new_password" autocomplete="new-password" required minlength="8" />
                    <p class="hint">"At least 8 characters. You'll be signed out everywhere and can then sign in with it."</p>
                </div>
                <ErrorMessage error=action_error(action) />
                <button type="submit" class="btn btn-primary" disabled=move || action.pending().get()>
                    {move || if action.pending().get() { "Saving…" } else { "Save my new password" }}
                </button>
            </ActionForm>
        </section>
    }
}

#[component]
pub fn ConfirmEmailChangePage() -> impl IntoView {
    let action = ServerAction::<ConfirmEmailChange>::new();
    let query = use_query_map();
    let token = move || query.read().get("token").unwrap_or_default();
    view! {
        <Title text="Confirm your new email" />
        <section class="card narrow">
            <h1>"Confirm your new email"</h1>
            <p>"Press the button to start using this address for your account."</p>
            <ActionForm action=action>
                <input type="hidden" name="token" value=token />
                <ErrorMessage error=action_error(action) />
                <button type="submit" class="btn btn-primary" disabled=move || action.pending().get()>"Use this address"</button>
            </ActionForm>
        </section>
    }
}

#[component]
fn CalendarFeed() -> impl IntoView {
    let action = ServerAction::<NewCalendarFeed>::new();
    view! {
        <section class="card">
            <h2>"Calendar subscription"</h2>
            <p>"Subscribe to your bookings from your calendar app. The link is private: anyone who has it can see your bookings, so you can replace it at any time."</p>
            <ActionForm action=action>
                <button type="submit" class="btn">"Make a new calendar link"</button>
            </ActionForm>
            {move || action.value().get().map(|r| match r {
                Ok(url) => view! { <p class="alert alert-success" role="status">"Your link (older links no longer work): " <code class="secret">{url}</code></p> }.into_any(),
                Err(e) => view! { <p class="alert alert-error" role="alert">{e.to_string()}</p> }.into_any(),
            })}
        </section>
    }
}

/// Download everything the portal holds, or ask to be deleted (POPIA s23, s24).
#[component]
fn YourData() -> impl IntoView {
    let delete = ServerAction::<crate::api::privacy::RequestAccountDeletion>::new();
    view! {
        <section class="card" aria-labelledby="your-data">
            <h2 id="your-data">"Your data"</h2>
            <p>"Download everything this portal holds about you: your details and consents, bookings, payments, messages and the record of actions on your account."</p>
            <p><a class="btn" href="/account/export" download>"Download my data"</a></p>
            <h3>"Delete my account"</h3>
            <p>"We erase your details, messages and documents. Payment records are kept for five years without your name, because tax law requires it. An admin confirms the request; until then nothing is deleted."</p>
            <ActionForm action=delete>
                <crate::components::ErrorMessage error=crate::components::action_error(delete) />
                <button type="submit" class="btn btn-danger" disabled=move || delete.pending().get()>"Ask to delete my account"</button>
            </ActionForm>
            {move || delete.value().get().and_then(|r| r.ok()).map(|_| view! { <p class="alert alert-success" role="status">"Your request is recorded. An admin confirms it; you'll be signed out when your account is deleted."</p> })}
        </section>
    }
}
