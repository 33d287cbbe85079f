//! The admin area: overview, integration health (summary, job list, job detail and actions),
//! the mail catcher and outbox, the audit log, and the stand-in switches.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};
use model::JobStatus;

use crate::api::admin::*;
use crate::components::{Badge, ErrorMessage, action_error, load_error};
use model::{IntegrationHealth, JobFilter, format_ms};

fn ago(ms: Option<i64>) -> String {
    ms.map(format_ms).unwrap_or_else(|| "never".into())
}

#[component]
fn HealthCards(health: Vec<IntegrationHealth>) -> impl IntoView {
    view! {
        <div class="cards" role="list">
            {health.into_iter().map(|h| {
                let href = format!("/admin/integrations?integration={}", h.integration);
                view! {
                    <article class=format!("card health health-{}", h.state) role="listitem">
                        <header class="card-head">
                            <h3><A href=href>{h.integration.clone()}</A></h3>
                            <Badge text=h.state.clone() />
                        </header>
                        <p class="muted">{h.reason.clone()}</p>
                        <dl class="facts small">
                            <dt>"Waiting"</dt><dd>{h.queue_depth}</dd>
                            <dt>"Oldest waiting since"</dt><dd>{ago(h.oldest_waiting_ms)}</dd>
                            <dt>"Failures (24 h)"</dt><dd>{h.failures_24h}</dd>
                            <dt>"In manual review"</dt><dd>{h.in_review}</dd>
                            <dt>"Last success"</dt><dd>{ago(h.last_success_ms)}</dd>
                        </dl>
                    </article>
                }
            }).collect_view()}
        </div>
    }
}

#[component]
pub fn OverviewPage() -> impl IntoView {
    let health = Resource::new(|| (), |_| get_integration_health());
    view! {
        <Title text="Admin overview" />
        <h1>"Overview"</h1>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match health.await {
                    Ok(h) => {
                        let attention: Vec<_> = h.iter().filter(|x| x.state != "healthy").cloned().collect();
                        view! {
                            <section>
                                <h2>"Needs attention"</h2>
                                {if attention.is_empty() {
                                    view! { <p class="empty-inline">"Nothing needs you right now. Every integration is healthy."</p> }.into_any()
                                } else {
                                    view! { <HealthCards health=attention /> }.into_any()
                                }}
                            </section>
                            <Today />
                            <section>
                                <h2>"Integration health"</h2>
                                <HealthCards health=h />
                                <p><A href="/admin/integrations">"Open the integration health area"</A></p>
                            </section>
                        }.into_any()
                    }
                    Err(e) => load_error(&e),
                }
            })}
        </Transition>
    }
}

const INTEGRATIONS: [&str; 6] = ["payments", "crm", "email", "storage", "calendar", "system"];
const STATUSES: [(&str, &str); 8] = [
    ("failed", "Failed (retrying or in review)"),
    ("waiting", "Waiting"),
    ("queued", "Queued"),
    ("running", "Running"),
    ("manual_review", "Manual review"),
    ("succeeded", "Succeeded"),
    ("resolved", "Resolved by hand"),
    ("cancelled", "Cancelled"),
];

#[component]
pub fn IntegrationsPage() -> impl IntoView {
    let query = use_query_map();
    let retry_all = ServerAction::<RetryJobs>::new();
    let retry_one = ServerAction::<RetryJob>::new();
    let filter = move || {
        let q = query.read();
        let page = q
            .get("page")
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(1);
        (
            JobFilter {
                integration: q.get("integration").filter(|s| !s.is_empty()),
                status: q.get("status").filter(|s| !s.is_empty()),
                subject: q.get("subject").filter(|s| !s.is_empty()),
                since_hours: q.get("since").and_then(|s| s.parse().ok()),
            },
            page,
        )
    };
    let health = Resource::new(
        move || (retry_all.version().get(), retry_one.version().get()),
        |_| get_integration_health(),
    );
    let jobs = Resource::new(
        move || {
            (
                filter(),
                retry_all.version().get(),
                retry_one.version().get(),
            )
        },
        |((f, page), _, _)| {
            list_jobs(
                f.integration,
                f.status,
                f.subject,
                f.since_hours,
                Some(page),
            )
        },
    );
    let retry_all_error = action_error(retry_all);
    let retry_one_error = action_error(retry_one);
    view! {
        <Title text="Integration health" />
        <div class="page-head">
            <h1>"Integration health"</h1>
            <div class="actions">
                <A href="/admin/integrations/map" attr:class="btn">"Integration map"</A>
                <A href="/admin/mail" attr:class="btn">"Mail"</A>
                <A href="/admin/standins" attr:class="btn">"Stand-ins"</A>
            </div>
        </div>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match health.await {
                    Ok(h) => view! { <HealthCards health=h /> }.into_any(),
                    Err(e) => load_error(&e),
                }
            })}
        </Transition>
        <h2 id="jobs">"Jobs"</h2>
        <form method="get" action="/admin/integrations" class="filters" aria-label="Filter jobs">
            <div class="field">
                <label for="f-integration">"Integration"</label>
                <select id="f-integration" name="integration">
                    <option value="">"All"</option>
                    {INTEGRATIONS.into_iter().map(|i| view! {
                        <option value=i selected=move || filter().0.integration.as_deref() == Some(i)>{i}</option>
                    }).collect_view()}
                </select>
            </div>
            <div class="field">
                <label for="f-status">"Status"</label>
                <select id="f-status" name="status">
                    <option value="">"All"</option>
                    {STATUSES.into_iter().map(|(v, l)| view! {
                        <option value=v selected=move || filter().0.status.as_deref() == Some(v)>{l}</option>
                    }).collect_view()}
                </select>
            </div>
            <div class="field">
                <label for="f-subject">"Subject"</label>
                <input id="f-subject" name="subject" placeholder="customer:42" prop:value=move || filter().0.subject.unwrap_or_default() />
            </div>
            <div class="field">
                <label for="f-since">"Created in the last"</label>
                <select id="f-since" name="since">
                    <option value="">"Any time"</option>
                    {[(1u32, "hour"), (24, "24 hours"), (168, "7 days"), (720, "30 days")].into_iter().map(|(h, l)| view! {
                        <option value=h.to_string() selected=move || filter().0.since_hours == Some(h)>{l}</option>
                    }).collect_view()}
                </select>
            </div>
            <button type="submit" class="btn">"Filter"</button>
        </form>
        <ActionForm action=retry_all attr:class="inline-form">
            <input type="hidden" name="integration" value=move || filter().0.integration.unwrap_or_default() />
            <input type="hidden" name="subject" value=move || filter().0.subject.unwrap_or_default() />
            <button type="submit" class="btn" disabled=move || retry_all.pending().get()>
                {move || if retry_all.pending().get() { "Retrying…" } else { "Retry all failed in this filter" }}
            </button>
            {move || retry_all.value().get().and_then(|r| r.ok()).map(|n| view! { <span class="muted" role="status">{format!(" {n} job(s) scheduled to run now.")}</span> })}
        </ActionForm>
        <ErrorMessage error=retry_all_error />
        <ErrorMessage error=retry_one_error />
        <Transition fallback=|| view! { <p>"Loading jobs…"</p> }>
            {move || Suspend::new(async move {
                let (f, _) = filter();
                match jobs.await {
                    Ok(page) if page.jobs.is_empty() => view! { <p class="empty-inline">"No jobs match this filter."</p> }.into_any(),
                    Ok(page) => {
                        let pages = ((page.total + i64::from(page.per_page) - 1) / i64::from(page.per_page)).max(1);
                        let link = move |p: i64| {
                            let mut q = vec![format!("page={p}")];
                            if let Some(i) = &f.integration { q.push(format!("integration={i}")); }
                            if let Some(s) = &f.status { q.push(format!("status={s}")); }
                            if let Some(s) = &f.subject { q.push(format!("subject={s}")); }
                            if let Some(h) = f.since_hours { q.push(format!("since={h}")); }
                            format!("/admin/integrations?{}", q.join("&"))
                        };
                        let current = i64::from(page.page);
                        view! {
                            <div class="table-wrap">
                                <table class="table">
                                    <thead><tr>
                                        <th scope="col">"Job"</th><th scope="col">"Integration"</th><th scope="col">"Subject"</th>
                                        <th scope="col">"Status"</th><th scope="col">"Attempts"</th><th scope="col">"Next run"</th>
                                        <th scope="col">"Last error"</th><th scope="col"><span class="sr-only">"Actions"</span></th>
                                    </tr></thead>
                                    <tbody>
                                        {page.jobs.into_iter().map(|j| {
                                            let can_retry = j.status == JobStatus::ManualReview || (j.status == JobStatus::Queued && j.last_error.is_some());
                                            let next = if j.status == JobStatus::Queued { format_ms(j.run_after_ms) } else { "—".into() };
                                            view! {
                                                <tr>
                                                    <td><A href=format!("/admin/integrations/jobs/{}", j.id)>{format!("#{} {}", j.id, j.kind)}</A></td>
                                                    <td>{j.integration.clone()}</td>
                                                    <td>{format!("{} {}", j.subject_type, j.subject_id)}</td>
                                                    <td><Badge text=j.status.to_string() /></td>
                                                    <td>{format!("{}/{}", j.attempts, j.max_attempts)}</td>
                                                    <td>{next}</td>
                                                    <td class="error-cell">{j.last_error.clone().unwrap_or_default()}</td>
                                                    <td>{can_retry.then(|| view! {
                                                        <ActionForm action=retry_one attr:class="inline-form">
                                                            <input type="hidden" name="id" value=j.id.to_string() />
                                                            <button type="submit" class="btn btn-small">"Retry now"</button>
                                                        </ActionForm>
                                                    })}</td>
                                                </tr>
                                            }
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            </div>
                            <nav class="pager" aria-label="Pages">
                                {(current > 1).then(|| view! { <a href=link(current - 1)>"← Newer"</a> })}
                                <span>{format!("Page {current} of {pages} · {} job(s)", page.total)}</span>
                                {(current < pages).then(|| view! { <a href=link(current + 1)>"Older →"</a> })}
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
pub fn JobPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || {
        params
            .read()
            .get("id")
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let retry = ServerAction::<RetryJob>::new();
    let close = ServerAction::<CloseJob>::new();
    let job = Resource::new(
        move || (id(), retry.version().get(), close.version().get()),
        |(id, _, _)| get_job(id),
    );
    let retry_error = action_error(retry);
    let close_error = action_error(close);
    view! {
        <Title text="Job" />
        <p><A href="/admin/integrations">"← Integration health"</A></p>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match job.await {
                    Ok(d) => {
                        let j = d.job.clone();
                        let open = j.status == JobStatus::Queued || j.status == JobStatus::ManualReview;
                        view! {
                            <div class="page-head">
                                <h1>{format!("Job #{}", j.id)}</h1>
                                <Badge text=j.status.to_string() />
                            </div>
                            <p class="lead">{d.description.clone()}</p>
                            <dl class="facts">
                                <dt>"Kind"</dt><dd>{j.kind.clone()}</dd>
                                <dt>"Integration"</dt><dd>{j.integration.clone()}</dd>
                                <dt>"Subject"</dt><dd>{format!("{} {}", j.subject_type, j.subject_id)}</dd>
                                <dt>"Attempts"</dt><dd>{format!("{} of {}", j.attempts, j.max_attempts)}</dd>
                                <dt>"Created"</dt><dd>{format_ms(j.created_at_ms)}</dd>
                                <dt>"Next retry"</dt><dd>{if j.status == JobStatus::Queued { format_ms(j.run_after_ms) } else { "none".into() }}</dd>
                                <dt>"Last error"</dt><dd class="error-cell">{j.last_error.clone().unwrap_or_else(|| "none".into())}</dd>
                            </dl>
                            {open.then(|| view! {
                                <section class="card">
                                    <h2>"Actions"</h2>
                                    <ActionForm action=retry attr:class="inline-form">
                                        <input type="hidden" name="id" value=j.id.to_string() />
                                        <button type="submit" class="btn btn-primary" disabled=move || retry.pending().get()>
                                            {move || if retry.pending().get() { "Scheduling…" } else { "Retry now" }}
                                        </button>
                                    </ActionForm>
                                    <ErrorMessage error=retry_error />
                                    <ActionForm action=close>
                                        <input type="hidden" name="id" value=j.id.to_string() />
                                        <div class="field">
                                            <label for="note">"Note (why you resolve or cancel it)"</label>
                                            <textarea id="note" name="note" rows="2" maxlength="500" required></textarea>
                                        </div>
                                        <div class="actions">
                                            <button type="submit" name="cancel" value="false" class="btn">"Mark resolved"</button>
                                            <button type="submit" name="cancel" value="true" class="btn btn-danger">"Cancel the job"</button>
                                        </div>
                                    </ActionForm>
                                    <ErrorMessage error=close_error />
                                </section>
                            })}
                            <h2>"Attempts"</h2>
                            {if d.attempts.is_empty() {
                                view! { <p class="empty-inline">"Not attempted yet."</p> }.into_any()
                            } else {
                                view! {
                                    <div class="table-wrap"><table class="table">
                                        <thead><tr><th scope="col">"#"</th><th scope="col">"Started"</th><th scope="col">"Duration"</th><th scope="col">"Outcome"</th><th scope="col">"Error"</th></tr></thead>
                                        <tbody>
                                            {d.attempts.into_iter().map(|a| view! {
                                                <tr>
                                                    <td>{a.attempt}</td>
                                                    <td>{format_ms(a.started_at_ms)}</td>
                                                    <td>{format!("{} ms", a.duration_ms)}</td>
                                                    <td><Badge text=a.outcome.clone() /></td>
                                                    <td class="error-cell">{a.error.unwrap_or_default()}</td>
                                                </tr>
                                            }).collect_view()}
                                        </tbody>
                                    </table></div>
                                }.into_any()
                            }}
                            <h2>"Audit"</h2>
                            {if d.audit.is_empty() {
                                view! { <p class="empty-inline">"No admin has acted on this job."</p> }.into_any()
                            } else {
                                view! {
                                    <ul class="audit">
                                        {d.audit.into_iter().map(|a| view! {
                                            <li>{format!("{} · {} · {} · {}", format_ms(a.at_ms), a.actor.unwrap_or_else(|| "system".into()), a.action, a.detail)}</li>
                                        }).collect_view()}
                                    </ul>
                                }.into_any()
                            }}
                        }.into_any()
                    }
                    Err(e) => load_error(&e),
                }
            })}
        </Transition>
    }
}

#[component]
pub fn MailPage() -> impl IntoView {
    let resend = ServerAction::<ResendEmail>::new();
    let test = ServerAction::<SendTestEmail>::new();
    let caught = Resource::new(move || test.version().get(), |_| get_caught_mail());
    let outbox = Resource::new(
        move || (resend.version().get(), test.version().get()),
        |_| list_emails(),
    );
    let resend_error = action_error(resend);
    view! {
        <Title text="Mail" />
        <div class="page-head">
            <h1>"Mail"</h1>
            <ActionForm action=test attr:class="inline-form">
                <button type="submit" class="btn" disabled=move || test.pending().get()>"Send me a test email"</button>
            </ActionForm>
        </div>
        <h2>"Outbox"</h2>
        <ErrorMessage error=resend_error />
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match outbox.await {
                    Ok(rows) if rows.is_empty() => view! { <p class="empty-inline">"The portal has not sent any email yet."</p> }.into_any(),
                    Ok(rows) => view! {
                        <div class="table-wrap"><table class="table">
                            <thead><tr><th scope="col">"Queued"</th><th scope="col">"To"</th><th scope="col">"Message"</th><th scope="col">"Status"</th><th scope="col">"Attempts"</th><th scope="col">"Server's reply"</th><th scope="col"><span class="sr-only">"Actions"</span></th></tr></thead>
                            <tbody>
                                {rows.into_iter().map(|r| view! {
                                    <tr>
                                        <td>{format_ms(r.created_at_ms)}</td>
                                        <td>{r.to_masked.clone()}</td>
                                        <td>{format!("{} — {}", r.template, r.subject)}</td>
                                        <td><Badge text=r.status.clone() /></td>
                                        <td>{r.attempts}</td>
                                        <td class="error-cell">{r.smtp_reply.clone().unwrap_or_default()}</td>
                                        <td>
                                            {r.job_id.map(|j| view! { <A href=format!("/admin/integrations/jobs/{j}")>"Job"</A> })}
                                            <ActionForm action=resend attr:class="inline-form">
                                                <input type="hidden" name="id" value=r.id.to_string() />
                                                <button type="submit" class="btn btn-small">"Resend"</button>
                                            </ActionForm>
                                        </td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table></div>
                    }.into_any(),
                    Err(e) => load_error(&e),
                }
            })}
        </Transition>
        <h2>"Mail catcher"</h2>
        <p class="muted">"While no real SMTP relay is configured, the portal delivers its email over SMTP to a local mail catcher, and every message it receives is shown here."</p>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match caught.await {
                    Ok(mails) if mails.is_empty() => view! { <p class="empty-inline">"No mail received yet (or a real relay is configured)."</p> }.into_any(),
                    Ok(mails) => view! {
                        <ul class="mail-list">
                            {mails.into_iter().map(|m| view! {
                                <li class="mail">
                                    <details>
                                        <summary>
                                            <strong class="mail-subject">{m.subject.clone()}</strong>
                                            <span class="muted">{format!(" to {} · {}", m.to.join(", "), format_ms(m.received_at_ms))}</span>
                                        </summary>
                                        <p class="muted">{format!("From {}", m.from)}</p>
                                        {(!m.attachments.is_empty()).then(|| view! { <p>{format!("Attachments: {}", m.attachments.join(", "))}</p> })}
                                        <pre class="mail-text">{m.text.clone()}</pre>
                                    </details>
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
pub fn AuditPage() -> impl IntoView {
    let query = use_query_map();
    let prefix = move || query.read().get("action").unwrap_or_default();
    let rows = Resource::new(prefix, |p| audit_log(Some(p)));
    view! {
        <Title text="Audit log" />
        <h1>"Audit log"</h1>
        <form method="get" action="/admin/audit" class="filters">
            <div class="field">
                <label for="action">"Action starts with"</label>
                <input id="action" name="action" placeholder="job." prop:value=prefix />
            </div>
            <button type="submit" class="btn">"Filter"</button>
        </form>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match rows.await {
                    Ok(r) if r.is_empty() => view! { <p class="empty-inline">"No entries."</p> }.into_any(),
                    Ok(r) => view! {
                        <div class="table-wrap"><table class="table">
                            <thead><tr><th scope="col">"When"</th><th scope="col">"Who"</th><th scope="col">"Action"</th><th scope="col">"Subject"</th><th scope="col">"Detail"</th></tr></thead>
                            <tbody>
                                {r.into_iter().map(|a| view! {
                                    <tr>
                                        <td>{format_ms(a.at_ms)}</td>
                                        <td>{a.actor.unwrap_or_else(|| "system".into())}</td>
                                        <td>{a.action}</td>
                                        <td>{format!("{} {}", a.subject_type, a.subject_id)}</td>
                                        <td>{a.detail}</td>
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

/// Incident support: who accessed which customer's data, and when, with the totals the
/// Information Regulator's breach notification form asks for.
#[component]
pub fn AccessPage() -> impl IntoView {
    use crate::api::privacy::access_report;
    let query = use_query_map();
    let field = move |k: &'static str| move || query.read().get(k).filter(|v| !v.is_empty());
    let args = move || (field("customer")(), field("from")(), field("to")());
    let report = Resource::new(args, |(c, f, t)| access_report(c, f, t));
    view! {
        <Title text="Data access" />
        <h1>"Who accessed customers' data"</h1>
        <p class="muted">"Every time staff opened a customer's page or downloaded their document, a customer downloaded their own data, or an admin exported every customer's bookings or payments. Use it to answer a customer, or to fill in the Information Regulator's breach notification form (POPIA section 22)."</p>
        <form method="get" action="/admin/access" class="filters">
            <div class="field">
                <label for="customer">"Customer (email or number)"</label>
                <input id="customer" name="customer" prop:value=move || field("customer")().unwrap_or_default() />
            </div>
            <div class="field">
                <label for="from">"From"</label>
                <input id="from" name="from" type="date" prop:value=move || field("from")().unwrap_or_default() />
            </div>
            <div class="field">
                <label for="to">"To (included)"</label>
                <input id="to" name="to" type="date" prop:value=move || field("to")().unwrap_or_default() />
            </div>
            <button type="submit" class="btn">"Show"</button>
        </form>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match report.await {
                    Ok(r) => {
                        let who = if r.actors.is_empty() { "nobody".to_owned() } else { r.actors.join(", ") };
                        let affected = if r.bulk_export {
                            format!("{} named; a bulk export in the period covers every customer", r.customers_affected)
                        } else {
                            r.customers_affected.to_string()
                        };
                        view! {
                            <section class="card" aria-labelledby="summary-h">
                                <h2 id="summary-h">"Summary for the breach form"</h2>
                                <dl class="facts">
                                    <dt>"Period"</dt><dd>{format!("{} to {} (business time)", r.from, r.to)}</dd>
                                    <dt>"Customer"</dt><dd>{r.customer.clone().unwrap_or_else(|| "all".into())}</dd>
                                    <dt>"Data subjects affected"</dt><dd data-testid="affected">{affected}</dd>
                                    <dt>"Accessed by"</dt><dd>{who}</dd>
                                    <dt>"Kinds of information"</dt><dd>{r.categories.join("; ")}</dd>
                                    <dt>"First and last access"</dt><dd>{format!("{} – {}", r.first.clone().unwrap_or_else(|| "none".into()), r.last.clone().unwrap_or_else(|| "none".into()))}</dd>
                                </dl>
                                {r.truncated.then(|| view! { <p class="notice">"Only the newest 1,000 entries are listed: narrow the period."</p> })}
                            </section>
                            {if r.lines.is_empty() {
                                view! { <p class="empty-inline">"No access in this period."</p> }.into_any()
                            } else {
                                view! {
                                    <div class="table-wrap"><table class="table">
                                        <thead><tr><th scope="col">"When"</th><th scope="col">"Who"</th><th scope="col">"Role"</th><th scope="col">"What"</th><th scope="col">"Customer"</th><th scope="col">"Information"</th><th scope="col">"Detail"</th></tr></thead>
                                        <tbody>
                                            {r.lines.into_iter().map(|l| view! {
                                                <tr>
                                                    <td>{l.at}</td>
                                                    <td>{l.who}</td>
                                                    <td>{l.role}</td>
                                                    <td>{l.action}</td>
                                                    <td>{l.customer}</td>
                                                    <td>{l.exposed}</td>
                                                    <td>{l.detail}</td>
                                                </tr>
                                            }).collect_view()}
                                        </tbody>
                                    </table></div>
                                }.into_any()
                            }}
                        }.into_any()
                    }
                    Err(e) => load_error(&e),
                }
            })}
        </Transition>
    }
}

#[component]
pub fn StandinsPage() -> impl IntoView {
    let set_mode = ServerAction::<SetSmtpMode>::new();
    let set_fault = ServerAction::<SetStandinFault>::new();
    let state = Resource::new(
        move || (set_mode.version().get(), set_fault.version().get()),
        |_| standin_state(),
    );
    let error = action_error(set_mode);
    let fault_error = action_error(set_fault);
    let fault_form = move |target: &'static str,
                           label: &'static str,
                           options: Vec<(&'static str, &'static str)>| {
        let id = format!("{target}-fault");
        view! {
            <ActionForm action=set_fault attr:class="inline-form">
                <input type="hidden" name="target" value=target />
                <label for=id.clone()>{label}</label>
                <select id=id name="fault">
                    {options.into_iter().map(|(v, l)| view! { <option value=v>{l}</option> }).collect_view()}
                </select>
                <button type="submit" class="btn">"Apply"</button>
            </ActionForm>
        }
    };
    view! {
        <Title text="Stand-ins" />
        <h1>"Stand-ins"</h1>
        <p class="muted">"The local stand-ins replace real services when none is configured. Make one fail on purpose to see how the portal copes, then set it back."</p>
        <ErrorMessage error=fault_error />
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match state.await {
                    Ok(s) => view! {
                        <section class="card">
                            <h2>"SMTP mail catcher"</h2>
                            {if s.smtp_active {
                                view! { <p>"The catcher now answers: " <Badge text=s.smtp.clone() /></p> }.into_any()
                            } else {
                                view! { <p>"A real SMTP relay is configured; the catcher is off."</p> }.into_any()
                            }}
                        </section>
                        <section class="card">
                            <h2>"Stripe stand-in"</h2>
                            {match s.stripe_url.clone() {
                                Some(url) => view! {
                                    <p data-testid="stripe-state">"Now: " {s.stripe.clone()} ". " <a href=url>"Its sessions, refunds, events and webhook deliveries"</a></p>
                                }.into_any(),
                                None => view! { <p>"Real Stripe keys are configured; the stand-in is off."</p> }.into_any(),
                            }}
                        </section>
                        <section class="card">
                            <h2>"CRM (HubSpot) stand-in"</h2>
                            {match s.crm_url.clone() {
                                Some(url) => view! {
                                    <p data-testid="crm-state">"Now: " {s.crm.clone()} ". " <a href=url>"Its contacts, requests and webhook deliveries"</a></p>
                                }.into_any(),
                                None => view! { <p>"A real CRM (or none) is configured; the stand-in is off."</p> }.into_any(),
                            }}
                        </section>
                    }.into_any(),
                    Err(e) => load_error(&e),
                }
            })}
        </Transition>
        <section class="card">
            <h2>"Switches"</h2>
            <ActionForm action=set_mode attr:class="inline-form">
                <label for="mode">"SMTP catcher answers with"</label>
                <select id="mode" name="mode">
                    <option value="accept">"accept (deliver normally)"</option>
                    <option value="unavailable">"unavailable (421, transient: the portal retries)"</option>
                    <option value="reject">"reject (550, permanent: manual review)"</option>
                </select>
                <button type="submit" class="btn">"Apply"</button>
            </ActionForm>
            <ErrorMessage error />
            {fault_form("stripe", "Stripe stand-in", vec![
                ("normal", "normal service"),
                ("api_down", "API down (503)"),
                ("fail_next_api_calls", "next 3 API calls fail (500)"),
                ("pause_webhooks", "pause webhooks"),
                ("drop_next_webhooks", "drop the next 3 webhook deliveries"),
                ("duplicate_webhooks", "send each webhook 3 times"),
                ("shuffle_webhooks", "deliver webhooks out of order"),
            ])}
            {fault_form("crm", "CRM stand-in", vec![
                ("normal", "normal service"),
                ("down", "down (503)"),
                ("rate_limit", "rate-limit the next 10 calls (429)"),
                ("fail_next", "next 5 calls fail (500)"),
            ])}
        </section>
    }
}

#[component]
pub fn PeoplePage() -> impl IntoView {
    let query = use_query_map();
    let q = move || query.read().get("q").unwrap_or_default();
    let set_active = ServerAction::<SetUserActive>::new();
    let correct = ServerAction::<CorrectUserEmail>::new();
    let invite = ServerAction::<InviteStaff>::new();
    let people = Resource::new(
        move || {
            (
                q(),
                set_active.version().get(),
                correct.version().get(),
                invite.version().get(),
            )
        },
        |(q, _, _, _)| list_people(Some(q)),
    );
    view! {
        <Title text="People" />
        <h1>"People"</h1>
        <section class="card">
            <h2>"Invite a member of staff"</h2>
            <ActionForm action=invite attr:class="filters">
                <div class="field">
                    <label for="invite_name">"Name"</label>
                    <input id="invite_name" name="name" required maxlength="100" />
                </div>
                <div class="field">
                    <label for="invite_email">"Email"</label>
                    <input id="invite_email" type="email" name="email" required />
                </div>
                <button type="submit" class="btn btn-primary" disabled=move || invite.pending().get()>"Send invitation"</button>
            </ActionForm>
            <ErrorMessage error=action_error(invite) />
            {move || invite.value().get().and_then(|r| r.ok()).map(|_| view! { <p class="alert alert-success" role="status">"Invitation sent. They choose a password from the link in the email, then set up two-step verification."</p> })}
        </section>
        <DeletionRequests />
        <form method="get" action="/admin/people" class="filters">
            <div class="field">
                <label for="q">"Name or email contains"</label>
                <input id="q" name="q" prop:value=q />
            </div>
            <button type="submit" class="btn">"Search"</button>
        </form>
        <ErrorMessage error=action_error(set_active) />
        <ErrorMessage error=action_error(correct) />
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match people.await {
                    Ok(rows) if rows.is_empty() => view! { <p class="empty-inline">"Nobody matches."</p> }.into_any(),
                    Ok(rows) => view! {
                        <div class="table-wrap"><table class="table">
                            <thead><tr><th scope="col">"Name"</th><th scope="col">"Email"</th><th scope="col">"Role"</th><th scope="col">"Status"</th><th scope="col">"CRM"</th><th scope="col">"Joined"</th><th scope="col"><span class="sr-only">"Actions"</span></th></tr></thead>
                            <tbody>
                                {rows.into_iter().map(|p| view! {
                                    <tr>
                                        <td>{p.name.clone()}</td>
                                        <td>{p.email.clone()}{(!p.email_verified).then(|| view! { <span class="muted">" (unconfirmed)"</span> })}</td>
                                        <td>{p.role.clone()}</td>
                                        <td><Badge text=if p.active { "active".to_string() } else { "deactivated".to_string() } /></td>
                                        <td class="small">{p.crm.clone().unwrap_or_default()}</td>
                                        <td>{format_ms(p.created_at_ms)}</td>
                                        <td>
                                            <ActionForm action=set_active attr:class="inline-form">
                                                <input type="hidden" name="id" value=p.id.to_string() />
                                                <input type="hidden" name="active" value=(!p.active).to_string() />
                                                <button type="submit" class="btn btn-small">{if p.active { "Deactivate" } else { "Reactivate" }}</button>
                                            </ActionForm>
                                            <details>
                                                <summary>"Correct email"</summary>
                                                <ActionForm action=correct attr:class="inline-form">
                                                    <input type="hidden" name="id" value=p.id.to_string() />
                                                    <label class="sr-only" for=format!("email-{}", p.id)>"New email for " {p.name.clone()}</label>
                                                    <input id=format!("email-{}", p.id) type="email" name="email" required />
                                                    <button type="submit" class="btn btn-small">"Save"</button>
                                                </ActionForm>
                                            </details>
                                        </td>
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

/// Customers who asked to be deleted, with the button that confirms it.
#[component]
fn DeletionRequests() -> impl IntoView {
    use crate::api::privacy::{ConfirmAccountDeletion, deletion_requests};
    let confirm = ServerAction::<ConfirmAccountDeletion>::new();
    let list = Resource::new(move || confirm.version().get(), |_| deletion_requests());
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match list.await {
                    Ok(l) if l.is_empty() => ().into_any(),
                    Ok(l) => view! {
                        <section class="card" aria-labelledby="deletion-requests">
                            <h2 id="deletion-requests">"Deletion requests"</h2>
                            <p>"Confirming signs the customer out, erases their personal information in the portal, the CRM and storage (each step a job in the health area), and keeps payment records de-identified."</p>
                            <ErrorMessage error=action_error(confirm) />
                            <ul class="audit">
                                {l.into_iter().map(|r| view! {
                                    <li>
                                        {format!("{} <{}> asked on {} ", r.name, r.email, r.requested)}
                                        <ActionForm action=confirm attr:class="inline-form">
                                            <input type="hidden" name="user_id" value=r.user_id.to_string() />
                                            <button type="submit" class="btn btn-danger btn-small">{format!("Confirm deletion of {}", r.name)}</button>
                                        </ActionForm>
                                    </li>
                                }).collect_view()}
                            </ul>
                        </section>
                    }.into_any(),
                    Err(e) => load_error(&e),
                }
            })}
        </Transition>
    }
}

/// Today's bookings and deposits, for the admin overview.
#[component]
fn Today() -> impl IntoView {
    let today = Resource::new(|| (), |_| crate::api::dashboard::admin_today());
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match today.await {
                    Ok(t) => view! {
                        <section aria-labelledby="today">
                            <h2 id="today">{format!("Today, {}", t.date)}</h2>
                            <ul class="stats" role="list">
                                <li><span class="stat">{t.bookings.len()}</span>" appointments"</li>
                                <li><span class="stat">{t.deposits_today.clone()}</span>" deposits today"</li>
                                <li><span class="stat">{t.deposits_month.clone()}</span>" deposits this month (net of refunds)"</li>
                                <li><span class="stat">{t.awaiting_deposit}</span>" holds waiting for a deposit"</li>
                                <li><span class="stat">{t.open_requests}</span>" document requests open"</li>
                            </ul>
                            {if t.bookings.is_empty() {
                                view! { <p class="empty-inline">"No appointments today."</p> }.into_any()
                            } else {
                                view! {
                                    <div class="table-wrap"><table class="table">
                                        <caption class="sr-only">"Today's appointments"</caption>
                                        <thead><tr><th scope="col">"When"</th><th scope="col">"Service"</th><th scope="col">"Customer"</th><th scope="col">"Staff"</th><th scope="col">"Status"</th></tr></thead>
                                        <tbody>
                                            {t.bookings.into_iter().map(|b| view! {
                                                <tr>
                                                    <td><A href=format!("/bookings/{}", b.id)>{b.when.clone()}</A></td>
                                                    <td>{b.service_name.clone()}</td>
                                                    <td>{b.customer_name.clone()}</td>
                                                    <td>{b.staff_name.clone()}</td>
                                                    <td><Badge text=b.status.clone() /></td>
                                                </tr>
                                            }).collect_view()}
                                        </tbody>
                                    </table></div>
                                }.into_any()
                            }}
                        </section>
                    }.into_any(),
                    Err(e) => load_error(&e),
                }
            })}
        </Transition>
    }
}
