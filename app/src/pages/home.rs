use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use crate::components::SiteResource;

#[component]
pub fn HomePage() -> impl IntoView {
    let site = expect_context::<SiteResource>();
    view! {
        <Title text="Welcome" />
        <section class="hero">
            <Transition fallback=|| view! { <h1>"Welcome"</h1> }>
                {move || Suspend::new(async move {
                    let info = site.await.ok();
                    let name = info.as_ref().map(|i| i.branding.business_name.clone()).unwrap_or_default();
                    let signed_in = info.as_ref().and_then(|i| i.user.clone());
                    let demo = info.as_ref().is_some_and(|i| i.demo);
                    view! {
                        <h1>"Welcome to " {name}</h1>
                        <p class="lead">"Book an appointment, pay your deposit, and exchange documents with us in one place."</p>
                        {match signed_in {
                            Some(u) => view! {
                                <p>"You're signed in as " {u.name} "."</p>
                                <A href=match u.role { model::Role::Admin => "/admin", model::Role::Staff => "/staff", model::Role::Customer => "/dashboard" } attr:class="btn btn-primary">"Continue"</A>
                            }.into_any(),
                            None => view! {
                                <div class="actions">
                                    <A href="/signup" attr:class="btn btn-primary">"Create an account"</A>
                                    <A href="/signin" attr:class="btn">"Sign in"</A>
                                </div>
                            }.into_any(),
                        }}
                        {demo.then(|| view! {
                            <p class="alert alert-info">"This is a demo portal: emails go to a local mail catcher, not to real inboxes."</p>
                        })}
                    }
                })}
            </Transition>
        </section>
    }
}

/// The privacy notice shown before any personal information is collected.
#[component]
pub fn PrivacyPage() -> impl IntoView {
    view! {
        <Title text="Privacy notice" />
        <article class="prose">
            <h1>"Privacy notice"</h1>
            <PrivacyText />
        </article>
    }
}

/// The notice's text (configured, or the template), also shown on the sign-up form.
#[component]
pub fn PrivacyText() -> impl IntoView {
    let notice = OnceResource::new(crate::api::site::privacy_notice());
    view! {
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                notice.await.unwrap_or_default().into_iter().map(|p| view! { <p>{p}</p> }).collect_view()
            })}
        </Transition>
    }
}
