//! Admin pages for bookings: services, staff hours, business settings, and all bookings.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;

use crate::api::setup::*;
use crate::components::{Badge, ErrorMessage, action_error, load_error};

const DAYS: [(&str, &str); 7] = [
    ("mon", "Monday"),
    ("tue", "Tuesday"),
    ("wed", "Wednesday"),
    ("thu", "Thursday"),
    ("fri", "Friday"),
    ("sat", "Saturday"),
    ("sun", "Sunday"),
];

#[component]
pub fn SetupPage() -> impl IntoView {
    let save_service = ServerAction::<SaveService>::new();
    let toggle = ServerAction::<SetServiceStaff>::new();
    let hours = ServerAction::<SaveHours>::new();
    let business = ServerAction::<SaveBusiness>::new();
    let add_exception = ServerAction::<AddException>::new();
    let remove_exception = ServerAction::<RemoveException>::new();
    let page = Resource::new(
        move || {
            (
                save_service.version().get(),
                toggle.version().get(),
                hours.version().get(),
                business.version().get(),
                add_exception.version().get(),
                remove_exception.version().get(),
            )
        },
        |_| get_setup(),
    );
    view! {
        <Title text="Services and hours" />
        <h1>"Services and hours"</h1>
        <ErrorMessage error=action_error(toggle) />
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match page.await {
                    Ok(p) => {
                        let staff = p.staff.clone();
                        view! {
                            <section class="card">
                                <h2>"Business"</h2>
                                <ActionForm action=business attr:class="filters">
                                    <div class="field"><label for="tz">"Time zone"</label><input id="tz" name="time_zone" value=p.time_zone.clone() required /></div>
                                    <div class="field"><label for="cur">"Currency"</label><input id="cur" name="currency" value=p.currency.clone() required maxlength="3" /></div>
                                    <div class="field"><label for="vat">"VAT %"</label><input id="vat" name="vat_percent" value=p.vat_percent.clone() required /></div>
                                    <div class="field checkbox"><input id="incl" type="checkbox" name="prices_include_vat" checked=p.prices_include_vat /><label for="incl">"Prices include VAT"</label></div>
                                    <div class="field"><label for="free">"Free changes until (hours before)"</label><input id="free" type="number" name="free_change_hours" value=p.free_change_hours.to_string() /></div>
                                    <div class="field"><label for="hold">"Hold unpaid bookings for (minutes)"</label><input id="hold" type="number" name="hold_minutes" value=p.hold_minutes.to_string() /></div>
                                    <div class="field"><label for="remind">"Reminder (hours before)"</label><input id="remind" type="number" name="reminder_hours" value=p.reminder_hours.to_string() /></div>
                                    <button type="submit" class="btn">"Save business settings"</button>
                                </ActionForm>
                                <ErrorMessage error=action_error(business) />
                            </section>
                            <h2>"Services"</h2>
                            {p.services.into_iter().map(|s| {
                                let sid = s.id;
                                let staff = staff.clone();
                                view! {
                                    <section class="card">
                                        <div class="card-head"><h3>{s.name.clone()}</h3><Badge text=if s.active { "active".to_string() } else { "inactive".to_string() } /></div>
                                        <ServiceForm action=save_service service=Some(s.clone()) />
                                        <p><strong>"Offered by: "</strong></p>
                                        <ul class="actions" role="list">
                                            {staff.into_iter().map(|m| {
                                                let offered = s.staff_ids.contains(&m.id);
                                                view! {
                                                    <li>
                                                        <ActionForm action=toggle attr:class="inline-form">
                                                            <input type="hidden" name="service_id" value=sid.to_string() />
                                                            <input type="hidden" name="staff_id" value=m.id.to_string() />
                                                            <input type="hidden" name="offered" value=(!offered).to_string() />
                                                            <button type="submit" class=if offered { "btn btn-small btn-primary" } else { "btn btn-small" } aria-pressed=offered.to_string()>
                                                                {format!("{} {}", if offered { "✓" } else { "+" }, m.name)}
                                                            </button>
                                                        </ActionForm>
                                                    </li>
                                                }
                                            }).collect_view()}
                                        </ul>
                                    </section>
                                }
                            }).collect_view()}
                            <section class="card">
                                <h3>"Add a service"</h3>
                                <ServiceForm action=save_service service=None />
                            </section>
                            <h2>"Staff working hours"</h2>
                            <p class="muted">"Ranges in the business's time zone, like 09:00-12:00, 13:00-17:00. Leave a day empty when they don't work."</p>
                            {p.staff.into_iter().map(|m| view! {
                                <section class="card">
                                    <h3>{m.name.clone()}</h3>
                                    <ActionForm action=hours attr:class="filters">
                                        <input type="hidden" name="staff_id" value=m.id.to_string() />
                                        {DAYS.iter().enumerate().map(|(i, (key, label))| {
                                            let id = format!("h-{}-{key}", m.id);
                                            view! {
                                                <div class="field">
                                                    <label for=id.clone()>{*label}</label>
                                                    <input id=id name=*key value=m.days.get(i).cloned().unwrap_or_default() />
                                                </div>
                                            }
                                        }).collect_view()}
                                        <div class="field">
                                            <label for=format!("tz-{}", m.id)>"Time zone (empty: the business's)"</label>
                                            <input id=format!("tz-{}", m.id) name="time_zone" value=m.time_zone.clone() placeholder="Africa/Johannesburg" />
                                        </div>
                                        <button type="submit" class="btn">{format!("Save hours for {}", m.name)}</button>
                                    </ActionForm>
                                    <h4>"Days off and changes"</h4>
                                    {if m.exceptions.is_empty() {
                                        view! { <p class="muted small">"None."</p> }.into_any()
                                    } else {
                                        view! {
                                            <ul class="audit">
                                                {m.exceptions.clone().into_iter().map(|(id, text)| view! {
                                                    <li>
                                                        {text} " "
                                                        <ActionForm action=remove_exception attr:class="inline-form">
                                                            <input type="hidden" name="id" value=id.to_string() />
                                                            <button type="submit" class="btn btn-small">"Remove"</button>
                                                        </ActionForm>
                                                    </li>
                                                }).collect_view()}
                                            </ul>
                                        }.into_any()
                                    }}
                                    <ActionForm action=add_exception attr:class="filters">
                                        <input type="hidden" name="staff_id" value=m.id.to_string() />
                                        <div class="field">
                                            <label for=format!("ek-{}", m.id)>"Kind"</label>
                                            <select id=format!("ek-{}", m.id) name="kind">
                                                <option value="day_off">"Day off"</option>
                                                <option value="changed_day">"Different hours that day"</option>
                                                <option value="time_off">"Away part of the day"</option>
                                            </select>
                                        </div>
                                        <div class="field"><label for=format!("ed-{}", m.id)>"Date"</label><input id=format!("ed-{}", m.id) type="date" name="date" required /></div>
                                        <div class="field"><label for=format!("ef-{}", m.id)>"From"</label><input id=format!("ef-{}", m.id) type="time" name="from" /></div>
                                        <div class="field"><label for=format!("et-{}", m.id)>"To"</label><input id=format!("et-{}", m.id) type="time" name="to" /></div>
                                        <div class="field"><label for=format!("en-{}", m.id)>"Note"</label><input id=format!("en-{}", m.id) name="note" maxlength="200" /></div>
                                        <button type="submit" class="btn">"Add"</button>
                                    </ActionForm>
                                </section>
                            }).collect_view()}
                            <ErrorMessage error=action_error(hours) />
                            <ErrorMessage error=action_error(add_exception) />
                        }.into_any()
                    }
                    Err(e) => load_error(&e),
                }
            })}
        </Transition>
    }
}

#[component]
fn ServiceForm(action: ServerAction<SaveService>, service: Option<ServiceAdmin>) -> impl IntoView {
    let s = service.clone().unwrap_or(ServiceAdmin {
        id: 0,
        name: String::new(),
        description: String::new(),
        duration_min: 60,
        buffer_before_min: 0,
        buffer_after_min: 0,
        price: String::new(),
        deposit_kind: "none".into(),
        deposit_value: String::new(),
        min_notice_min: 60,
        horizon_days: 60,
        active: true,
        staff_ids: vec![],
    });
    let p = if service.is_some() {
        format!("s{}", s.id)
    } else {
        "new".into()
    };
    let f = move |n: &str| format!("{p}-{n}");
    view! {
        <ActionForm action=action attr:class="filters">
            {service.as_ref().map(|s| view! { <input type="hidden" name="id" value=s.id.to_string() /> })}
            <div class="field"><label for=f("name")>"Name"</label><input id=f("name") name="name" value=s.name.clone() required maxlength="100" /></div>
            <div class="field"><label for=f("desc")>"Description"</label><input id=f("desc") name="description" value=s.description.clone() maxlength="1000" /></div>
            <div class="field"><label for=f("dur")>"Minutes"</label><input id=f("dur") type="number" name="duration_min" value=s.duration_min.to_string() required /></div>
            <div class="field"><label for=f("before")>"Buffer before"</label><input id=f("before") type="number" name="buffer_before_min" value=s.buffer_before_min.to_string() /></div>
            <div class="field"><label for=f("after")>"Buffer after"</label><input id=f("after") type="number" name="buffer_after_min" value=s.buffer_after_min.to_string() /></div>
            <div class="field"><label for=f("price")>"Price"</label><input id=f("price") name="price" value=s.price.clone() required placeholder="450.00" /></div>
            <div class="field"><label for=f("dk")>"Deposit"</label>
                <select id=f("dk") name="deposit_kind">
                    <option value="none" selected=s.deposit_kind == "none">"None"</option>
                    <option value="fixed" selected=s.deposit_kind == "fixed">"Fixed amount"</option>
                    <option value="percent" selected=s.deposit_kind == "percent">"Percentage"</option>
                </select>
            </div>
            <div class="field"><label for=f("dv")>"Deposit amount or %"</label><input id=f("dv") name="deposit_value" value=s.deposit_value.clone() /></div>
            <div class="field"><label for=f("notice")>"Minimum notice (min)"</label><input id=f("notice") type="number" name="min_notice_min" value=s.min_notice_min.to_string() /></div>
            <div class="field"><label for=f("horizon")>"Bookable ahead (days)"</label><input id=f("horizon") type="number" name="horizon_days" value=s.horizon_days.to_string() /></div>
            <div class="field checkbox"><input id=f("active") type="checkbox" name="active" checked=s.active /><label for=f("active")>"Bookable"</label></div>
            <button type="submit" class="btn btn-primary">{if service.is_some() { "Save service" } else { "Add service" }}</button>
        </ActionForm>
        <ErrorMessage error=action_error(action) />
    }
}

#[component]
pub fn AdminBookingsPage() -> impl IntoView {
    let query = use_query_map();
    let status = move || query.read().get("status");
    let staff = move || {
        query
            .read()
            .get("staff")
            .and_then(|s| s.parse::<i64>().ok())
    };
    let from = move || query.read().get("from");
    let to = move || query.read().get("to");
    let rows = Resource::new(
        move || (status(), staff(), from(), to()),
        |(s, st, f, t)| admin_bookings(s, st, f, t),
    );
    view! {
        <Title text="All bookings" />
        <div class="page-head">
            <h1>"All bookings"</h1>
            <a class="btn" href="/admin/bookings.csv" download>"Export CSV"</a>
        </div>
        <form method="get" action="/admin/bookings" class="filters">
            <div class="field">
                <label for="status">"Status"</label>
                <select id="status" name="status">
                    <option value="">"All"</option>
                    {["confirmed", "awaiting_deposit", "cancelled", "completed", "no_show", "expired"].into_iter().map(|s| view! {
                        <option value=s selected=move || status().as_deref() == Some(s)>{s.replace('_', " ")}</option>
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
                    Ok(r) if r.is_empty() => view! { <p class="empty-inline">"No bookings."</p> }.into_any(),
                    Ok(r) => view! {
                        <div class="table-wrap"><table class="table">
                            <thead><tr><th scope="col">"When"</th><th scope="col">"Service"</th><th scope="col">"Staff"</th><th scope="col">"Customer"</th><th scope="col">"Status"</th><th scope="col">"Price"</th><th scope="col">"Deposit"</th></tr></thead>
                            <tbody>
                                {r.into_iter().map(|b| view! {
                                    <tr>
                                        <td><A href=format!("/bookings/{}", b.id)>{b.when.clone()}</A></td>
                                        <td>{b.service_name.clone()}</td>
                                        <td>{b.staff_name.clone()}</td>
                                        <td>{b.customer_name.clone()}</td>
                                        <td><Badge text=b.status.clone() /></td>
                                        <td>{b.price.clone()}</td>
                                        <td>{b.deposit.clone()}{b.deposit_outcome.clone().map(|o| format!(" ({o})"))}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table></div>
                    }.into_any(),
                    Err(e) => load_error(&e),
                }
            })}
        </Transition>
    }
}
