//! Payment pages: the return page after Stripe Checkout, a customer's payments and receipts, the
//! refund form for staff and admins, and the admin payments list with its CSV export.

use leptos::prelude::*;
use leptos_meta::{Meta, Title};
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::payments::*;
use crate::components::{Badge, ErrorMessage, action_error, load_error};

fn id_param() -> impl Fn() -> i64 + Copy + Send + Sync + 'static {
    let params = use_params_map();
    move || {
        params
            .read()
            .get("id")
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    }
}

/// `/bookings/:id/paid`: where Stripe sends the customer back. It shows the real state and,
/// while the payment is being confirmed, reloads itself every few seconds (no JavaScript needed).
#[component]
pub fn PaymentReturnPage() -> impl IntoView {
    let id = id_param();
    let status = Resource::new(id, payment_return);
    view! {
        <Title text="Your payment" />
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match status.await {
                    Ok(r) => {
                        let waiting = matches!(r.state.as_str(), "confirming");
                        let class = match r.state.as_str() {
                            "confirmed" => "alert alert-success",
                            "confirming" | "processing" => "alert alert-info",
                            _ => "alert alert-error",
                        };
                        view! {
                            {waiting.then(|| view! { <Meta http_equiv="refresh" content="3" /> })}
                            <section class="card narrow">
                                <h1>{if r.state == "confirmed" { "Booking confirmed" } else { "Your payment" }}</h1>
                                <p>{format!("{}, {}", r.service_name, r.when)}</p>
                                <p class=class role="status" data-state=r.state.clone()>{r.message.clone()}</p>
                                <p><A href=format!("/bookings/{}", r.booking_id) attr:class="btn">"View the booking"</A></p>
                            </section>
                        }.into_any()
                    }
                    Err(e) => load_error(&e),
                }
            })}
        </Transition>
    }
}

/// The payments section of a booking's page: status, receipt links, and "Pay deposit".
#[component]
pub fn BookingPayments(
    booking_id: i64,
    awaiting: bool,
    hold_until: Option<String>,
    #[prop(optional)] due_at_visit: bool,
    #[prop(optional)] staff_view: bool,
    #[prop(optional, into)] deposit: String,
) -> impl IntoView {
    let query = use_query_map();
    let notice = move || query.read().get("payment");
    let pay = ServerAction::<PayDeposit>::new();
    let link = ServerAction::<SendPaymentLink>::new();
    let list = Resource::new(move || booking_id, booking_payments);
    view! {
        {move || match notice().as_deref() {
            Some("unavailable") => Some(view! {
                <p class="alert alert-error" role="alert">{format!("We couldn't reach the payment provider just now. Your time is held until {}; please try again in a minute.", hold_until.clone().unwrap_or_default())}</p>
            }.into_any()),
            Some("at_visit") => Some(view! {
                <p class="alert alert-info" role="status">"Online payment is unavailable just now, so your booking is confirmed and the deposit can be paid at your visit. We may email you a link to pay it online."</p>
            }.into_any()),
            Some("cancelled") => Some(view! {
                <p class="alert alert-info" role="status">"You left the payment page without paying. Your time is still held; pay below to confirm it."</p>
            }.into_any()),
            _ => None,
        }}
        {due_at_visit.then(|| view! {
            <section class="card">
                <h2>"Deposit due at the visit"</h2>
                <p>{format!("The deposit of {deposit} was not paid online (payments were unavailable when this was booked). Collect it at the visit, or email a payment link.")}</p>
                {staff_view.then(|| view! {
                    <ActionForm action=link>
                        <input type="hidden" name="booking_id" value=booking_id.to_string() />
                        <ErrorMessage error=action_error(link) />
                        <button type="submit" class="btn" disabled=move || link.pending().get()>"Email a payment link"</button>
                    </ActionForm>
                    {move || link.value().get().and_then(|r| r.ok()).map(|_| view! { <p class="alert alert-success" role="status">"Payment link emailed to the customer."</p> })}
                })}
            </section>
        })}
        {awaiting.then(|| view! {
            <section class="card">
                <h2>"Pay the deposit"</h2>
                <p>"Your booking is confirmed as soon as the deposit is paid. You pay on Stripe's secure page and come straight back here."</p>
                <ActionForm action=pay>
                    <input type="hidden" name="booking_id" value=booking_id.to_string() />
                    <ErrorMessage error=action_error(pay) />
                    <button type="submit" class="btn btn-primary" disabled=move || pay.pending().get()>
                        {move || if pay.pending().get() { "Opening the payment page…" } else { "Pay deposit" }}
                    </button>
                </ActionForm>
            </section>
        })}
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match list.await {
                    Ok(lines) if lines.is_empty() => ().into_any(),
                    Ok(lines) => view! {
                        <h2>"Payments"</h2>
                        <table class="table">
                            <thead><tr><th scope="col">"Started"</th><th scope="col">"Amount"</th><th scope="col">"Status"</th><th scope="col">"Receipt"</th></tr></thead>
                            <tbody>
                                {lines.into_iter().map(|p| view! {
                                    <tr>
                                        <td>{p.created.clone()}</td>
                                        <td>{p.amount.clone()}</td>
                                        <td><Badge text=p.status.clone() />{p.last_error.clone().map(|e| view! { <br /><span class="small muted">{e}</span> })}</td>
                                        <td>{p.receipt_number.clone().map(|n| view! { <A href=format!("/payments/{}", p.id)>{n}</A> })}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                    Err(e) => load_error(&e),
                }
            })}
        </Transition>
    }
}

/// `/payments`: the customer's payment history.
#[component]
pub fn MyPaymentsPage() -> impl IntoView {
    let list = Resource::new(|| (), |_| my_payments());
    view! {
        <Title text="Payments" />
        <h1>"Payments"</h1>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match list.await {
                    Ok(lines) if lines.is_empty() => view! { <p class="empty-inline">"No payments yet. Deposits you pay for bookings appear here with their receipts."</p> }.into_any(),
                    Ok(lines) => view! { <PaymentTable lines=lines admin=false /> }.into_any(),
                    Err(e) => load_error(&e),
                }
            })}
        </Transition>
    }
}

#[component]
fn PaymentTable(lines: Vec<PaymentLine>, admin: bool) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="table">
                <thead>
                    <tr>
                        <th scope="col">"Date"</th>
                        <th scope="col">"For"</th>
                        {admin.then(|| view! { <th scope="col">"Customer"</th> })}
                        <th scope="col">"Amount"</th>
                        <th scope="col">"Refunded"</th>
                        <th scope="col">"Status"</th>
                        <th scope="col">"Receipt"</th>
                    </tr>
                </thead>
                <tbody>
                    {lines.into_iter().map(|p| view! {
                        <tr>
                            <td>{p.paid.clone().unwrap_or(p.created.clone())}</td>
                            <td><A href=format!("/bookings/{}", p.booking_id)>{p.service_name.clone()}</A></td>
                            {admin.then(|| view! { <td>{p.customer_name.clone()}</td> })}
                            <td>{p.amount.clone()}</td>
                            <td>{p.refunded.clone()}</td>
                            <td><Badge text=p.status.clone() />{p.disputed.then(|| view! { " " <span class="badge badge-bad">"disputed"</span> })}</td>
                            <td><A href=format!("/payments/{}", p.id)>{p.receipt_number.clone().unwrap_or_else(|| "details".into())}</A></td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

/// `/payments/:id`: the receipt (customer), with refunds; staff and admins also get the refund
/// form.
#[component]
pub fn PaymentPage() -> impl IntoView {
    let id = id_param();
    let refund = ServerAction::<RefundPayment>::new();
    let detail = Resource::new(
        move || (id(), refund.version().get()),
        |(id, _)| get_payment(id),
    );
    view! {
        <Title text="Payment" />
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(d) => {
                        let p = d.payment.clone();
                        view! {
                            <div class="page-head">
                                <h1>{p.receipt_number.clone().map(|n| format!("Receipt {n}")).unwrap_or_else(|| "Payment".into())}</h1>
                                <Badge text=p.status.clone() />
                            </div>
                            <section class="card receipt">
                                <p><strong>{d.business_name.clone()}</strong></p>
                                <dl class="facts">
                                    <dt>"For"</dt><dd>{format!("Deposit: {} with {}, {}", p.service_name, d.staff_name, d.booking_when)}</dd>
                                    <dt>"Customer"</dt><dd>{p.customer_name.clone()}</dd>
                                    <dt>"Paid"</dt><dd>{p.paid.clone().unwrap_or_else(|| "not yet".into())}</dd>
                                    <dt>"Amount"</dt><dd>{p.amount.clone()}</dd>
                                    <dt>{format!("VAT included ({})", p.vat_rate)}</dt><dd>{p.vat.clone()}</dd>
                                    <dt>"Net of VAT"</dt><dd>{p.net.clone()}</dd>
                                    <dt>"Refunded"</dt><dd>{p.refunded.clone()}</dd>
                                </dl>
                                {p.disputed.then(|| view! { <p class="alert alert-error">"The customer disputed this payment with their bank."</p> })}
                                {p.last_error.clone().map(|e| view! { <p class="alert alert-error">{e}</p> })}
                            </section>
                            {(!d.refunds.is_empty()).then(|| view! {
                                <h2>"Refunds"</h2>
                                <table class="table">
                                    <thead><tr><th scope="col">"Requested"</th><th scope="col">"Amount"</th><th scope="col">"Reason"</th><th scope="col">"Status"</th></tr></thead>
                                    <tbody>
                                        {d.refunds.clone().into_iter().map(|r| view! {
                                            <tr>
                                                <td>{r.at.clone()}</td>
                                                <td>{r.amount.clone()}</td>
                                                <td>{r.reason.clone()}</td>
                                                <td><Badge text=r.status.clone() />{r.error.clone().map(|e| view! { <br /><span class="small">{e}</span> })}</td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            })}
                            {d.can_refund.then(|| view! {
                                <section class="card">
                                    <h2>"Refund"</h2>
                                    <p>{format!("Up to {} can be refunded. The customer is emailed with your reason.", p.refundable)}</p>
                                    <ActionForm action=refund>
                                        <input type="hidden" name="payment_id" value=p.id.to_string() />
                                        <div class="field">
                                            <label for="amount">"Amount"</label>
                                            <input id="amount" name="amount" inputmode="decimal" required value=format!("{}.{:02}", p.refundable_cents / 100, p.refundable_cents % 100) />
                                        </div>
                                        <div class="field">
                                            <label for="reason">"Reason"</label>
                                            <input id="reason" name="reason" required maxlength="300" />
                                        </div>
                                        <ErrorMessage error=action_error(refund) />
                                        <button type="submit" class="btn btn-danger" disabled=move || refund.pending().get()>"Refund"</button>
                                    </ActionForm>
                                </section>
                            })}
                            <p><A href=format!("/bookings/{}", p.booking_id)>"The booking"</A></p>
                        }.into_any()
                    }
                    Err(e) => load_error(&e),
                }
            })}
        </Transition>
    }
}

/// `/admin/payments`: every payment with filters, and the CSV for the accountant.
#[component]
pub fn AdminPaymentsPage() -> impl IntoView {
    let query = use_query_map();
    let status = move || query.read().get("status");
    let from = move || query.read().get("from");
    let to = move || query.read().get("to");
    let rows = Resource::new(
        move || (status(), from(), to()),
        |(s, f, t)| admin_payments(s, f, t),
    );
    let csv = move || {
        let mut q = Vec::new();
        for (k, v) in [("status", status()), ("from", from()), ("to", to())] {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                q.push(format!("{k}={v}"));
            }
        }
        format!("/admin/payments.csv?{}", q.join("&"))
    };
    view! {
        <Title text="Payments" />
        <div class="page-head">
            <h1>"Payments"</h1>
            <a class="btn" href=csv download>"Export CSV"</a>
        </div>
        <form method="get" action="/admin/payments" class="filters">
            <div class="field">
                <label for="status">"Status"</label>
                <select id="status" name="status">
                    <option value="">"All"</option>
                    {[("paid", "paid"), ("refunded", "refunded"), ("partly_refunded", "partly refunded"), ("waiting", "waiting for payment"), ("processing", "processing"), ("failed", "failed"), ("expired", "expired"), ("disputed", "disputed")].into_iter().map(|(v, l)| view! {
                        <option value=v selected=move || status().as_deref() == Some(v)>{l}</option>
                    }).collect_view()}
                </select>
            </div>
            <div class="field">
                <label for="from">"From"</label>
                <input id="from" type="date" name="from" prop:value=move || from().unwrap_or_default() />
            </div>
            <div class="field">
                <label for="to">"To"</label>
                <input id="to" type="date" name="to" prop:value=move || to().unwrap_or_default() />
            </div>
            <button type="submit" class="btn">"Filter"</button>
        </form>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match rows.await {
                    Ok(lines) if lines.is_empty() => view! { <p class="empty-inline">"No payments match."</p> }.into_any(),
                    Ok(lines) => view! { <PaymentTable lines=lines admin=true /> }.into_any(),
                    Err(e) => load_error(&e),
                }
            })}
        </Transition>
    }
}

/// The user's recent messages with what they say (on the account page): while email is down,
/// the customer still sees what each email would have told them.
#[component]
pub fn MyMessages() -> impl IntoView {
    let list = Resource::new(|| (), |_| my_messages());
    view! {
        <section class="card" aria-labelledby="messages-title">
            <h2 id="messages-title">"Messages we sent you"</h2>
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match list.await {
                        Ok(m) if m.is_empty() => view! { <p class="empty-inline">"No messages yet."</p> }.into_any(),
                        Ok(m) => view! {
                            <ul class="messages">
                                {m.into_iter().map(|m| view! {
                                    <li>
                                        <details>
                                            <summary>{format!("{} · {}", m.at, m.subject)} " " <Badge text=if m.status == "sent" { "sent".to_string() } else { "waiting to be sent".to_string() } /></summary>
                                            <pre class="mail-text">{m.text.clone()}</pre>
                                        </details>
                                    </li>
                                }).collect_view()}
                            </ul>
                        }.into_any(),
                        // Signed out: the page above already says so.
                        Err(_) => ().into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}
