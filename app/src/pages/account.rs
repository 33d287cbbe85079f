use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::{load_error, SiteResource};
use crate::error::AppError;

#[component]
pub fn AccountPage() -> impl IntoView {
    let site = expect_context::<SiteResource>();
    view! {
        <Title text="My account" />
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match site.await.map(|i| i.user) {
                    Ok(Some(u)) => view! {
                        <section class="card">
                            <h1>"Hello, " {u.name.clone()}</h1>
                            <dl class="facts">
                                <dt>"Email"</dt><dd>{u.email.clone()}</dd>
                                <dt>"Email confirmed"</dt>
                                <dd>{if u.email_verified { "Yes" } else { "Not yet: open the link we emailed you. Until then you can't book." }}</dd>
                            </dl>
                        </section>
                    }.into_any(),
                    Ok(None) => load_error(&AppError::Unauthenticated),
                    Err(e) => load_error(&e),
                }
            })}
        </Transition>
    }
}
