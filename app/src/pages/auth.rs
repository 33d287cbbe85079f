use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;

use crate::api::auth::{SignIn, SignUp, VerifyEmail};
use crate::components::{ErrorMessage, action_error};
use crate::pages::home::PrivacyText;

#[component]
pub fn SignInPage() -> impl IntoView {
    let action = ServerAction::<SignIn>::new();
    let error = action_error(action);
    let query = use_query_map();
    let next = move || query.read().get("next").unwrap_or_default();
    let verified = move || query.read().get("verified").is_some();
    let reset = move || query.read().get("reset").is_some();
    let invited = move || query.read().get("invited").is_some();
    let show_password = RwSignal::new(false);
    view! {
        <Title text="Sign in" />
        <section class="card narrow">
            <h1>"Sign in"</h1>
            <Show when=verified>
                <p class="alert alert-success" role="status">"Your email is confirmed. Sign in to continue."</p>
            </Show>
            <Show when=invited>
                <p class="alert alert-success" role="status">"Your password is set. Sign in, then set up two-step verification."</p>
            </Show>
            <Show when=reset>
                <p class="alert alert-success" role="status">"Your password is changed. Sign in with your new password."</p>
            </Show>
            <ActionForm action=action>
                <input type="hidden" name="next" value=next />
                <div class="field">
                    <label for="email">"Email"</label>
                    <input id="email" type="email" name="email" autocomplete="username" required />
                </div>
                <div class="field">
                    <label for="password">"Password"</label>
                    <div class="with-toggle">
                        <input
                            id="password"
                            name="password"
                            autocomplete="current-password"
                            required
                            type=move || if show_password.get() { "text" } else { "password" }
                        />
                        <button
                            type="button"
                            class="btn btn-small"
                            aria-controls="password"
                            aria-pressed=move || show_password.get().to_string()
                            on:click=move |_| show_password.update(|s| *s = !*s)
                        >
                            {move || if show_password.get() { "Hide" } else { "Show" }}
                        </button>
                    </div>
                </div>
                <ErrorMessage error />
                <button type="submit" class="btn btn-primary" disabled=move || action.pending().get()>
                    {move || if action.pending().get() { "Signing in…" } else { "Sign in" }}
                </button>
            </ActionForm>
            <p class="muted"><A href="/forgot-password">"Forgot your password?"</A></p>
            <p class="muted">"New here? " <A href="/signup">"Create an account"</A></p>
        </section>
    }
}

#[component]
pub fn SignUpPage() -> impl IntoView {
    let action = ServerAction::<SignUp>::new();
    let error = action_error(action);
    view! {
        <Title text="Create an account" />
        <section class="card narrow">
            <h1>"Create an account"</h1>
            <ActionForm action=action>
                <div class="field">
                    <label for="name">"Full name"</label>
                    <input id="name" name="name" autocomplete="name" required maxlength="100" />
                </div>
                <div class="field">
                    <label for="email">"Email"</label>
                    <input id="email" type="email" name="email" autocomplete="email" required />
                    <p class="hint">"We'll send a link to confirm it."</p>
                </div>
                <div class="field">
                    <label for="phone">"Phone " <span class="muted">"(optional)"</span></label>
                    <input id="phone" type="tel" name="phone" autocomplete="tel" maxlength="30" />
                </div>
                <div class="field">
                    <label for="password">"Password"</label>
                    <input id="password" type="password" name="password" autocomplete="new-password" required minlength="8" />
                    <p class="hint">"At least 8 characters. A few unrelated words make a strong password that is easy to remember."</p>
                </div>
                <details class="notice" open>
                    <summary>"Privacy notice"</summary>
                    <PrivacyText />
                </details>
                <div class="field checkbox">
                    <input id="accept_privacy" type="checkbox" name="accept_privacy" required />
                    <label for="accept_privacy">"I have read the privacy notice and agree to my information being used as it describes."</label>
                </div>
                <div class="field checkbox">
                    <input id="marketing" type="checkbox" name="marketing" />
                    <label for="marketing">"Send me news and offers (optional; you can change this later)."</label>
                </div>
                <ErrorMessage error />
                <button type="submit" class="btn btn-primary" disabled=move || action.pending().get()>
                    {move || if action.pending().get() { "Creating your account…" } else { "Create account" }}
                </button>
            </ActionForm>
            <p class="muted">"Already have an account? " <A href="/signin">"Sign in"</A></p>
        </section>
    }
}

#[component]
pub fn SignUpDonePage() -> impl IntoView {
    view! {
        <Title text="Check your email" />
        <section class="card narrow">
            <h1>"Check your email"</h1>
            <p>"We've sent you a link to confirm your email address. Open it to finish setting up your account."</p>
            <p class="muted">"It can take a minute to arrive. If you already had an account with this email, sign in instead."</p>
            <A href="/signin" attr:class="btn">"Go to sign in"</A>
        </section>
    }
}

#[component]
pub fn VerifyEmailPage() -> impl IntoView {
    let action = ServerAction::<VerifyEmail>::new();
    let error = action_error(action);
    let query = use_query_map();
    let token = move || query.read().get("token").unwrap_or_default();
    view! {
        <Title text="Confirm your email" />
        <section class="card narrow">
            <h1>"Confirm your email"</h1>
            <p>"Press the button to confirm this is your email address."</p>
            <ActionForm action=action>
                <input type="hidden" name="token" value=token />
                <ErrorMessage error />
                <button type="submit" class="btn btn-primary" disabled=move || action.pending().get()>
                    {move || if action.pending().get() { "Confirming…" } else { "Confirm my email" }}
                </button>
            </ActionForm>
        </section>
    }
}
