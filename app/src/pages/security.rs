//! The second step of signing in, and setting up two-step verification.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::account::AcceptInvitation;
use crate::api::auth::VerifySignInCode;
use crate::api::security::*;
use crate::components::{ErrorMessage, action_error, load_error};

#[component]
pub fn SignInVerifyPage() -> impl IntoView {
    let action = ServerAction::<VerifySignInCode>::new();
    let query = use_query_map();
    let next = move || query.read().get("next").unwrap_or_default();
    view! {
        <Title text="Two-step verification" />
        <section class="card narrow">
            <h1>"Enter your code"</h1>
            <p>"Open your authenticator app and type the 6-digit code it shows for this portal. Lost your phone? Type one of your recovery codes instead."</p>
            <ActionForm action=action>
                <input type="hidden" name="next" value=next />
                <div class="field">
                    <label for="code">"Code"</label>
                    <input id="code" name="code" autocomplete="one-time-code" inputmode="numeric" required maxlength="20" />
                </div>
                <ErrorMessage error=action_error(action) />
                <button type="submit" class="btn btn-primary" disabled=move || action.pending().get()>
                    {move || if action.pending().get() { "Checking…" } else { "Continue" }}
                </button>
            </ActionForm>
        </section>
    }
}

#[component]
fn RecoveryCodes(codes: Vec<String>) -> impl IntoView {
    view! {
        <div class="alert alert-success" role="status">
            <p><strong>"Save these recovery codes now."</strong>" Each works once if you lose your phone. They won't be shown again."</p>
            <ul class="codes">{codes.into_iter().map(|c| view! { <li><code>{c}</code></li> }).collect_view()}</ul>
        </div>
    }
}

#[component]
pub fn SecurityPage() -> impl IntoView {
    let begin = ServerAction::<BeginTotpSetup>::new();
    let confirm = ServerAction::<ConfirmTotpSetup>::new();
    let regenerate = ServerAction::<RegenerateRecoveryCodes>::new();
    let disable = ServerAction::<DisableTotp>::new();
    let state = Resource::new(
        move || {
            (
                confirm.version().get(),
                disable.version().get(),
                regenerate.version().get(),
            )
        },
        |_| get_security(),
    );
    view! {
        <Title text="Two-step verification" />
        <h1>"Two-step verification"</h1>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match state.await {
                    Ok(s) if s.enabled => view! {
                        <section class="card">
                            <p>"Two-step verification is " <strong>"on"</strong> ". Signing in asks for a code from your authenticator app."</p>
                            <p class="muted">{format!("{} recovery code(s) left.", s.recovery_codes_left)}</p>
                            {move || confirm.value().get().and_then(|r| r.ok()).map(|codes| view! { <RecoveryCodes codes /> })}
                            {move || regenerate.value().get().and_then(|r| r.ok()).map(|codes| view! { <RecoveryCodes codes /> })}
                            <ActionForm action=regenerate>
                                <div class="field">
                                    <label for="regen_password">"Your password"</label>
                                    <input id="regen_password" type="password" name="password" autocomplete="current-password" required />
                                </div>
                                <ErrorMessage error=action_error(regenerate) />
                                <button type="submit" class="btn">"Make new recovery codes"</button>
                            </ActionForm>
                            {(!s.required).then(|| view! {
                                <ActionForm action=disable>
                                    <div class="field">
                                        <label for="off_password">"Your password"</label>
                                        <input id="off_password" type="password" name="password" autocomplete="current-password" required />
                                    </div>
                                    <ErrorMessage error=action_error(disable) />
                                    <button type="submit" class="btn btn-danger">"Turn two-step verification off"</button>
                                </ActionForm>
                            })}
                        </section>
                    }.into_any(),
                    Ok(s) => view! {
                        <section class="card">
                            {s.required.then(|| view! {
                                <p class="alert alert-info">"Staff and admin accounts need two-step verification before they can reach customer data. It takes a minute."</p>
                            })}
                            <ol class="steps">
                                <li>"Install an authenticator app on your phone (for example Google Authenticator, Microsoft Authenticator or 1Password)."</li>
                                <li>"Press the button below and add the key it shows to the app."</li>
                                <li>"Type the 6-digit code the app then shows."</li>
                            </ol>
                            <ActionForm action=begin>
                                <button type="submit" class="btn">"Show my set-up key"</button>
                            </ActionForm>
                            {move || begin.value().get().map(|r| match r {
                                Ok(setup) => view! {
                                    <div class="card">
                                        <p>"Add this key to your app (choose “enter a set-up key”, time-based):"</p>
                                        <p><code class="secret" data-testid="totp-secret">{setup.secret.clone()}</code></p>
                                        <p class="muted small">"Or open this link on your phone: " <a href=setup.otpauth_uri.clone()>"add to authenticator"</a></p>
                                    </div>
                                }.into_any(),
                                Err(e) => view! { <p class="alert alert-error" role="alert">{e.to_string()}</p> }.into_any(),
                            })}
                            <ActionForm action=confirm>
                                <div class="field">
                                    <label for="totp_code">"Code from the app"</label>
                                    <input id="totp_code" name="code" autocomplete="one-time-code" inputmode="numeric" required maxlength="6" />
                                </div>
                                <ErrorMessage error=action_error(confirm) />
                                <button type="submit" class="btn btn-primary" disabled=move || confirm.pending().get()>"Turn on two-step verification"</button>
                            </ActionForm>
                        </section>
                    }.into_any(),
                    Err(e) => load_error(&e),
                }
            })}
        </Transition>
    }
}

#[component]
pub fn AcceptInvitationPage() -> impl IntoView {
    let action = ServerAction::<AcceptInvitation>::new();
    let query = use_query_map();
    let token = move || query.read().get("token").unwrap_or_default();
    view! {
        <Title text="Accept your invitation" />
        <section class="card narrow">
            <h1>"Welcome aboard"</h1>
            <p>"Choose a password for your staff account."</p>
            <ActionForm action=action>
                <input type="hidden" name="token" value=token />
                <div class="field">
                    <label for="new_password">"Password"</label>
                    <input id="new_password" type="password" name="new_password" autocomplete="new-password" required minlength="8" />
                    <p class="hint">"At least 8 characters; a few unrelated words work well."</p>
                </div>
                <ErrorMessage error=action_error(action) />
                <button type="submit" class="btn btn-primary" disabled=move || action.pending().get()>"Save and continue"</button>
            </ActionForm>
        </section>
    }
}
