//! The integration map (`/admin/integrations/map`): what is connected, what moves, the source of
//! truth, timings, retries, visibility, secrets, fallbacks and health, with a connection test per
//! integration, a Markdown export, and the runbooks.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

use crate::api::admin::{TestIntegration, integration_map, runbook};
use crate::components::{Badge, load_error};
use model::format_ms;

#[component]
pub fn MapPage() -> impl IntoView {
    let rows = Resource::new(|| (), |_| integration_map());
    let test = ServerAction::<TestIntegration>::new();
    view! {
        <Title text="Integration map" />
        <div class="page-head">
            <h1>"Integration map"</h1>
            <a class="btn" href="/admin/integrations/map.md" download>"Export as Markdown"</a>
        </div>
        <p class="lead">"What this portal is connected to, what moves between the systems, who owns which data, and what happens when a connection fails. "<A href="/admin/integrations">"Back to integration health"</A></p>
        {move || test.value().get().map(|r| match r {
            Ok(t) => view! {
                <p class=if t.ok { "alert alert-success" } else { "alert alert-error" } role="status" data-testid=format!("test-{}", t.key)>
                    {format!("{}: {}", if t.ok { "Connection test passed" } else { "Connection test failed" }, t.message)}
                </p>
            }.into_any(),
            Err(e) => view! { <p class="alert alert-error" role="alert">{e.to_string()}</p> }.into_any(),
        })}
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match rows.await {
                    Ok(rows) => rows.into_iter().map(|r| {
                        let key = r.key.clone();
                        let test_label = format!("Test connection: {}", r.name);
                        let runbook_label = format!("Runbook: {}", r.name);
                        view! {
                            <section class="card map-row" aria-labelledby=format!("map-{}", r.key)>
                                <div class="page-head">
                                    <h2 id=format!("map-{}", r.key)>{r.name.clone()}</h2>
                                    {r.health.clone().map(|h| view! { <Badge text=h.state.clone() /> })}
                                </div>
                                <dl class="facts">
                                    <dt>"Connected to"</dt>
                                    <dd>{r.connected_to.clone()}{r.standin.then(|| view! { " " <span class="badge badge-warn">"local stand-in"</span> })}</dd>
                                    {r.health.clone().map(|h| view! {
                                        <dt>"Health"</dt>
                                        <dd>{h.reason.clone()}{h.last_success_ms.map(|t| format!(" · last success {}", format_ms(t)))}</dd>
                                    })}
                                    <dt>"Retries"</dt><dd>{r.retry.clone()}</dd>
                                    <dt>"Fallback"</dt><dd>{r.fallback.clone()}</dd>
                                    <dt>"Who can see the data"</dt><dd>{r.visibility.clone()}</dd>
                                    <dt>"Secrets"</dt>
                                    <dd>{if r.secrets.is_empty() {
                                        "none configured".to_string()
                                    } else {
                                        r.secrets.iter().map(|s| format!("{}{}", s.name, s.changed_at.map(|t| format!(" (value last changed {})", format_ms(t))).unwrap_or_default())).collect::<Vec<_>>().join("; ")
                                    }}</dd>
                                </dl>
                                {(!r.flows.is_empty()).then(|| view! {
                                    <div class="table-wrap"><table class="table">
                                        <caption class="sr-only">{format!("Data flows of {}", r.name)}</caption>
                                        <thead><tr><th scope="col">"Flow"</th><th scope="col">"Direction"</th><th scope="col">"Fields"</th><th scope="col">"When"</th></tr></thead>
                                        <tbody>
                                            {r.flows.iter().map(|f| view! {
                                                <tr><td>{f.what.clone()}</td><td>{f.direction.clone()}</td><td>{f.fields.join(", ")}</td><td>{f.timing.clone()}</td></tr>
                                            }).collect_view()}
                                        </tbody>
                                    </table></div>
                                })}
                                <div class="table-wrap"><table class="table">
                                    <caption class="sr-only">{format!("Sources of truth for {}", r.name)}</caption>
                                    <thead><tr><th scope="col">"Data"</th><th scope="col">"Source of truth"</th></tr></thead>
                                    <tbody>
                                        {r.source_of_truth.iter().map(|(d, s)| view! { <tr><td>{d.clone()}</td><td>{s.clone()}</td></tr> }).collect_view()}
                                    </tbody>
                                </table></div>
                                <div class="inline-form">
                                    <ActionForm action=test>
                                        <input type="hidden" name="key" value=key.clone() />
                                        <button type="submit" class="btn" disabled=move || test.pending().get()>{test_label}</button>
                                    </ActionForm>
                                    <A href=format!("/admin/integrations/runbooks/{}", r.runbook)>{runbook_label}</A>
                                </div>
                            </section>
                        }
                    }).collect_view().into_any(),
                    Err(e) => load_error(&e),
                }
            })}
        </Transition>
    }
}

#[component]
pub fn RunbookPage() -> impl IntoView {
    let params = use_params_map();
    let name = move || params.read().get("name").unwrap_or_default();
    let text = Resource::new(name, runbook);
    view! {
        <Title text="Runbook" />
        <p><A href="/admin/integrations/map">"← Integration map"</A></p>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match text.await {
                    Ok(t) => view! { <article class="card"><pre class="runbook">{t}</pre></article> }.into_any(),
                    Err(e) => load_error(&e),
                }
            })}
        </Transition>
    }
}
