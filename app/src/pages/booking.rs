//! Booking pages: services, free times, the summary before booking, a customer's bookings with
//! cancel and move, and staff's week.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::booking::*;
use crate::components::{Badge, ErrorMessage, action_error, load_error};
use model::format_ms;

#[component]
pub fn ServicesPage() -> impl IntoView {
    let services = Resource::new(|| (), |_| list_services());
    view! {
        <Title text="Book" />
        <h1>"Book an appointment"</h1>
        <p class="lead">"Step 1 of 3: choose a service."</p>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match services.await {
                    Ok(list) if list.is_empty() => view! { <p class="empty-inline">"No services can be booked online yet."</p> }.into_any(),
                    Ok(list) => view! {
                        <ul class="cards" role="list">
                            {list.into_iter().map(|s| view! {
                                <li class="card">
                                    <h2 class="card-title">{s.name.clone()}</h2>
                                    <p class="muted">{format!("{} minutes · {}", s.duration_min, s.price)}{(!s.deposit.is_empty()).then(|| format!(" · {}", s.deposit))}</p>
                                    {(!s.description.is_empty()).then(|| view! { <p>{s.description.clone()}</p> })}
                                    <A href=format!("/book/{}", s.id) attr:class="btn btn-primary">{format!("Choose {}", s.name)}</A>
                                </li>
                            }).collect_view()}
                        </ul>
                    }.into_any(),
                    Err(e) => load_error(&e),
                }
            })}
        </Transition>
    }
}

#[component]
pub fn SlotsPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let service_id = move || {
        params
            .read()
            .get("service")
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let staff = move || {
        query
            .read()
            .get("staff")
            .and_then(|s| s.parse::<i64>().ok())
    };
    let day = move || query.read().get("day");
    let moving = move || query.read().get("move").and_then(|s| s.parse::<i64>().ok());
    let page = Resource::new(
        move || (service_id(), staff(), day()),
        |(s, st, d)| service_slots(s, st, d),
    );
    view! {
        <Title text="Choose a time" />
        <Transition fallback=|| view! { <p>"Loading free times…"</p> }>
            {move || Suspend::new(async move {
                match page.await {
                    Ok(p) => {
                        let sid = p.service.id;
                        let mv = moving();
                        let link = move |day: Option<String>, staff: Option<i64>| {
                            let mut q = Vec::new();
                            if let Some(d) = day { q.push(format!("day={d}")); }
                            if let Some(s) = staff { q.push(format!("staff={s}")); }
                            if let Some(m) = mv { q.push(format!("move={m}")); }
                            format!("/book/{sid}?{}", q.join("&"))
                        };
                        let current_staff = staff();
                        let total: usize = p.days.iter().map(|d| d.slots.len()).sum();
                        view! {
                            <h1>{p.service.name.clone()}</h1>
                            <p class="lead">{if mv.is_some() { "Choose the new time for your booking.".to_string() } else { "Step 2 of 3: choose a time.".to_string() }}</p>
                            <p class="muted">{format!("{} minutes · {}", p.service.duration_min, p.service.price)}{(!p.service.deposit.is_empty()).then(|| format!(" · {}", p.service.deposit))}{format!(" · times in {}", p.time_zone)}</p>
                            <nav class="filters" aria-label="Staff">
                                <a href=link(None, None) class=if current_staff.is_none() { "btn btn-small btn-primary" } else { "btn btn-small" }>"Anyone"</a>
                                {p.staff.iter().map(|(id, name)| {
                                    let cls = if current_staff == Some(*id) { "btn btn-small btn-primary" } else { "btn btn-small" };
                                    view! { <a href=link(None, Some(*id)) class=cls>{name.clone()}</a> }
                                }).collect_view()}
                            </nav>
                            {(total == 0).then(|| view! { <p class="empty-inline">"No free times in these seven days. Try the next week."</p> })}
                            <div class="days">
                                {p.days.into_iter().map(|d| view! {
                                    <section class="day" aria-label=d.label.clone()>
                                        <h2 class="day-title">{d.label.clone()}</h2>
                                        {if d.slots.is_empty() {
                                            view! { <p class="muted small">"No free times"</p> }.into_any()
                                        } else {
                                            view! {
                                                <ul class="slots" role="list">
                                                    {d.slots.into_iter().map(|s| {
                                                        let href = match mv {
                                                            Some(m) => format!("/bookings/{m}/move?start={}", s.start_ms),
                                                            None => format!("/book/{sid}/confirm?start={}&staff={}", s.start_ms, s.staff_id),
                                                        };
                                                        view! { <li><a class="slot" href=href>{s.label}</a></li> }
                                                    }).collect_view()}
                                                </ul>
                                            }.into_any()
                                        }}
                                    </section>
                                }).collect_view()}
                            </div>
                            <nav class="pager" aria-label="Weeks">
                                {p.prev_day.clone().map(|d| view! { <a href=link(Some(d), current_staff)>"← Earlier"</a> })}
                                <a href=link(Some(p.next_day.clone()), current_staff)>"Later →"</a>
                            </nav>
                        }.into_any()
                    }
                    Err(e) => load_error(&e),
                }
            })}
        </Transition>
    }
}

#[component]
pub fn ConfirmBookingPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let service_id = move || {
        params
            .read()
            .get("service")
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let start = move || {
        query
            .read()
            .get("start")
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let staff = move || {
        query
            .read()
            .get("staff")
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let quote = Resource::new(
        move || (service_id(), staff(), start()),
        |(s, st, t)| quote_booking(s, st, t),
    );
    let action = ServerAction::<Book>::new();
    view! {
        <Title text="Confirm your booking" />
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match quote.await {
                    Ok(q) => view! {
                        <section class="card narrow">
                            <h1>"Confirm your booking"</h1>
                            <p class="lead">"Step 3 of 3: check and book."</p>
                            <dl class="facts">
                                <dt>"Service"</dt><dd>{q.service.name.clone()}</dd>
                                <dt>"With"</dt><dd>{q.staff_name.clone()}</dd>
                                <dt>"When"</dt><dd>{q.when.clone()}</dd>
                                <dt>"Price"</dt><dd>{q.service.price.clone()}</dd>
                                <dt>"Deposit"</dt><dd>{if q.service.deposit.is_empty() { "none".to_string() } else { q.service.deposit.clone() }}</dd>
                                <dt>"Policy"</dt><dd>{q.policy.clone()}</dd>
                            </dl>
                            {match q.bookable.clone() {
                                Ok(()) => view! {
                                    <ActionForm action=action>
                                        <input type="hidden" name="service_id" value=service_id().to_string() />
                                        <input type="hidden" name="staff_id" value=staff().to_string() />
                                        <input type="hidden" name="start_ms" value=start().to_string() />
                                        <ErrorMessage error=action_error(action) />
                                        <button type="submit" class="btn btn-primary" disabled=move || action.pending().get()>
                                            {move || if action.pending().get() { "Booking…" } else { "Book this time" }}
                                        </button>
                                    </ActionForm>
                                }.into_any(),
                                Err(reason) => view! {
                                    <p class="alert alert-error" role="alert">{reason}</p>
                                    <A href=format!("/book/{}", service_id()) attr:class="btn">"Choose another time"</A>
                                }.into_any(),
                            }}
                            <p class="muted small">"You need an account with a confirmed email to book. " <A href="/signin">"Sign in"</A></p>
                            <p class="muted small" data-testid="booking-notice">"Booking shares your name, contact details and this appointment with our staff and our customer records system; a deposit is paid through Stripe. Some of our providers store information outside South Africa, under agreements that protect it as POPIA requires. " <A href="/privacy">"Privacy notice"</A></p>
                        </section>
                    }.into_any(),
                    Err(e) => load_error(&e),
                }
            })}
        </Transition>
    }
}

#[component]
fn BookingList(rows: Vec<BookingRow>, empty: &'static str) -> impl IntoView {
    if rows.is_empty() {
        return view! { <p class="empty-inline">{empty}</p> }.into_any();
    }
    view! {
        <ul class="booking-list" role="list">
            {rows.into_iter().map(|b| view! {
                <li class="card booking">
                    <div class="card-head">
                        <h3><A href=format!("/bookings/{}", b.id)>{format!("{} with {}", b.service_name, b.staff_name)}</A></h3>
                        <Badge text=b.status.clone() />
                    </div>
                    <p>{b.when.clone()}</p>
                </li>
            }).collect_view()}
        </ul>
    }
    .into_any()
}

#[component]
pub fn MyBookingsPage() -> impl IntoView {
    let rows = Resource::new(|| (), |_| my_bookings());
    view! {
        <Title text="My bookings" />
        <div class="page-head">
            <h1>"My bookings"</h1>
            <A href="/book" attr:class="btn btn-primary">"Book an appointment"</A>
        </div>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match rows.await {
                    Ok(mine) => view! {
                        <h2>"Upcoming"</h2>
                        <BookingList rows=mine.upcoming empty="No upcoming bookings." />
                        <h2>"Past and cancelled"</h2>
                        <BookingList rows=mine.past empty="Nothing yet." />
                    }.into_any(),
                    Err(e) => load_error(&e),
                }
            })}
        </Transition>
    }
}

#[component]
pub fn BookingPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || {
        params
            .read()
            .get("id")
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let cancel = ServerAction::<CancelBooking>::new();
    let mark = ServerAction::<MarkBooking>::new();
    let detail = Resource::new(
        move || (id(), cancel.version().get(), mark.version().get()),
        |(id, _, _)| get_booking(id),
    );
    view! {
        <Title text="Booking" />
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(d) => {
                        let b = d.booking.clone();
                        view! {
                            <div class="page-head">
                                <h1>{format!("{} with {}", b.service_name, b.staff_name)}</h1>
                                <Badge text=b.status.clone() />
                            </div>
                            {(b.status == "awaiting_deposit").then(|| view! {
                                <p class="alert alert-info">{format!("This time is held for you until {} while the deposit is paid.", b.hold_expires.clone().unwrap_or_default())}</p>
                            })}
                            {(b.status == "confirmed").then(|| view! {
                                <p class="alert alert-success" role="status">"Your booking is confirmed; the confirmation email (with a calendar file) is on its way."</p>
                            })}
                            <dl class="facts">
                                <dt>"When"</dt><dd>{b.when.clone()}</dd>
                                <dt>"Customer"</dt><dd>{b.customer_name.clone()}</dd>
                                <dt>"Price"</dt><dd>{b.price.clone()}</dd>
                                <dt>"Deposit"</dt><dd>{if b.deposit.is_empty() { "none".to_string() } else { b.deposit.clone() }}</dd>
                                {b.deposit_outcome.clone().map(|o| view! { <dt>"Deposit outcome"</dt><dd>{o}</dd> })}
                            </dl>
                            {(!b.deposit.is_empty()).then(|| view! {
                                <crate::pages::payments::BookingPayments
                                    booking_id=b.id
                                    awaiting={b.status == "awaiting_deposit" && !d.is_staff_view}
                                    hold_until=b.hold_expires.clone()
                                    due_at_visit=b.deposit_due_at_visit
                                    staff_view=d.is_staff_view
                                    deposit=b.deposit.clone() />
                            })}
                            {d.can_move.then(|| view! {
                                <p><A href=format!("/book/{}?move={}", b.service_id, b.id) attr:class="btn">"Move to another time"</A></p>
                            })}
                            {d.can_cancel.then(|| view! {
                                <section class="card">
                                    <h2>"Cancel this booking"</h2>
                                    <p>{d.cancel_effect.clone()}</p>
                                    <ActionForm action=cancel>
                                        <input type="hidden" name="id" value=b.id.to_string() />
                                        <div class="field">
                                            <label for="reason">"Reason " <span class="muted">"(optional)"</span></label>
                                            <input id="reason" name="reason" maxlength="300" />
                                        </div>
                                        <ErrorMessage error=action_error(cancel) />
                                        <button type="submit" class="btn btn-danger" disabled=move || cancel.pending().get()>"Cancel booking"</button>
                                    </ActionForm>
                                </section>
                            })}
                            {(d.is_staff_view && b.status == "confirmed").then(|| view! {
                                <section class="card">
                                    <h2>"After the appointment"</h2>
                                    <ActionForm action=mark attr:class="inline-form">
                                        <input type="hidden" name="id" value=b.id.to_string() />
                                        <button type="submit" name="status" value="completed" class="btn">"Mark completed"</button>
                                        <button type="submit" name="status" value="no_show" class="btn">"Mark no-show"</button>
                                    </ActionForm>
                                    <ErrorMessage error=action_error(mark) />
                                </section>
                            })}
                            <h2>"History"</h2>
                            <ul class="audit">
                                {d.history.into_iter().map(|(at, what)| view! { <li>{format!("{} · {what}", format_ms(at))}</li> }).collect_view()}
                            </ul>
                        }.into_any()
                    }
                    Err(e) => load_error(&e),
                }
            })}
        </Transition>
    }
}

#[component]
pub fn MoveBookingPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let id = move || {
        params
            .read()
            .get("id")
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let start = move || {
        query
            .read()
            .get("start")
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let action = ServerAction::<RescheduleBooking>::new();
    let detail = Resource::new(id, get_booking);
    view! {
        <Title text="Move your booking" />
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(d) => view! {
                        <section class="card narrow">
                            <h1>"Move your booking"</h1>
                            <p>{format!("{} with {}, now {}.", d.booking.service_name, d.booking.staff_name, d.booking.when)}</p>
                            <p>{format!("New time: {}", format_ms(start()))}</p>
                            <ActionForm action=action>
                                <input type="hidden" name="id" value=id().to_string() />
                                <input type="hidden" name="start_ms" value=start().to_string() />
                                <ErrorMessage error=action_error(action) />
                                <button type="submit" class="btn btn-primary" disabled=move || action.pending().get()>"Move my booking"</button>
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
pub fn StaffPage() -> impl IntoView {
    let query = use_query_map();
    let day = move || query.read().get("day");
    let day_view = move || query.read().get("view").as_deref() == Some("day");
    let days = Resource::new(day, staff_schedule);
    view! {
        <Title text="My schedule" />
        <div class="page-head">
            <h1>{move || if day_view() { "My day" } else { "My week" }}</h1>
            <div class="actions">
                <A href="/staff?view=day" attr:class="btn">"Today"</A>
                <A href="/staff" attr:class="btn">"This week"</A>
            </div>
        </div>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match days.await {
                    Ok(days) => {
                        let single = day_view();
                        let next = days.get(1).map(|d| d.date.clone());
                        let shown: Vec<_> = if single { days.into_iter().take(1).collect() } else { days };
                        view! {
                            {(single).then(|| next.map(|n| view! { <p><A href=format!("/staff?view=day&day={n}")>"Next day →"</A></p> }))}
                            <div class=if single { "week day-view" } else { "week" }>
                                {shown.into_iter().map(|d| {
                                    let label = d.label.clone();
                                    let title = if single {
                                        view! { <span>{label.clone()}</span> }.into_any()
                                    } else {
                                        let href = format!("/staff?view=day&day={}", d.date);
                                        view! { <A href=href>{label.clone()}</A> }.into_any()
                                    };
                                    view! {
                                    <section class="card day" aria-label=d.label.clone()>
                                        <h2 class="day-title">{title}</h2>
                                        {if d.bookings.is_empty() {
                                            view! { <p class="muted small">"No appointments"</p> }.into_any()
                                        } else {
                                            view! {
                                                <ul class="audit">
                                                    {d.bookings.into_iter().map(|b| view! {
                                                        <li>
                                                            <A href=format!("/bookings/{}", b.id)>{format!("{} · {} · {}", b.when, b.service_name, b.customer_name)}</A>
                                                            " " <Badge text=b.status.clone() />
                                                            {b.deposit_due_at_visit.then(|| view! { " " <span class="badge badge-warn">"deposit due"</span> })}
                                                        </li>
                                                    }).collect_view()}
                                                </ul>
                                            }.into_any()
                                        }}
                                    </section>
                                    }
                                }).collect_view()}
                            </div>
                        }.into_any()
                    }
                    Err(e) => load_error(&e),
                }
            })}
        </Transition>
    }
}
