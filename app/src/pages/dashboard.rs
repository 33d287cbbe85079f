//! The customer's home in the portal: what needs them first, then their next appointment and
//! recent payments.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use crate::api::dashboard::customer_dashboard;
use crate::components::{Badge, load_error};

#[component]
pub fn DashboardPage() -> impl IntoView {
    let data = Resource::new(|| (), |_| customer_dashboard());
    view! {
        <Title text="Home" />
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(d) => view! {
                        <div class="page-head">
                            <h1>{format!("Hello, {}", d.name)}</h1>
                            <A href="/book" attr:class="btn btn-primary">"Book an appointment"</A>
                        </div>
                        <section class="card" aria-labelledby="attention">
                            <h2 id="attention">"Needs your attention"</h2>
                            {if d.attention.is_empty() {
                                view! { <p class="empty-inline">"Nothing right now."</p> }.into_any()
                            } else {
                                view! {
                                    <ul class="attention" role="list">
                                        {d.attention.into_iter().map(|a| view! {
                                            <li><span>{a.text}</span>" " <A href=a.href attr:class="btn btn-small">{a.action}</A></li>
                                        }).collect_view()}
                                    </ul>
                                }.into_any()
                            }}
                        </section>
                        <section class="card" aria-labelledby="next">
                            <h2 id="next">"Your next appointment"</h2>
                            {match d.next {
                                Some(b) => view! {
                                    <p><strong>{format!("{} with {}", b.service_name, b.staff_name)}</strong></p>
                                    <p>{b.when.clone()} " " <Badge text=b.status.clone() /></p>
                                    <p><A href=format!("/bookings/{}", b.id)>"View, move or cancel"</A>
                                        {(d.upcoming > 1).then(|| view! { " · " <A href="/bookings">{format!("all {} upcoming", d.upcoming)}</A> })}</p>
                                }.into_any(),
                                None => view! { <p class="empty-inline">"No upcoming appointment. " <A href="/book">"Book one"</A></p> }.into_any(),
                            }}
                        </section>
                        <section class="card" aria-labelledby="recent-payments">
                            <h2 id="recent-payments">"Recent payments"</h2>
                            {if d.payments.is_empty() {
                                view! { <p class="empty-inline">"No payments yet."</p> }.into_any()
                            } else {
                                view! {
                                    <ul class="audit">
                                        {d.payments.into_iter().map(|p| view! {
                                            <li>{format!("{} · {} · {} ", p.paid.clone().unwrap_or(p.created.clone()), p.service_name, p.amount)}<Badge text=p.status.clone() />" "<A href=format!("/payments/{}", p.id)>"receipt"</A></li>
                                        }).collect_view()}
                                    </ul>
                                    <p><A href="/payments">"All payments"</A></p>
                                }.into_any()
                            }}
                        </section>
                        <p><A href="/documents">"Your documents"</A>" · "<A href="/account">"Your account and data"</A></p>
                    }.into_any(),
                    Err(e) => load_error(&e),
                }
            })}
        </Transition>
    }
}
