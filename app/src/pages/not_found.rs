use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

/// The 404 page. On the server it also sets the status to 404.
#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(opts) = use_context::<leptos_axum::ResponseOptions>() {
        opts.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Page not found" />
        <section class="empty">
            <h1>"We couldn't find that page"</h1>
            <p>"The link may be old, or the page may have moved."</p>
            <A href="/" attr:class="btn btn-primary">"Go to the home page"</A>
        </section>
    }
}
