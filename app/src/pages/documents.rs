//! Document pages: a customer's documents and requests (`/documents`), the customer list for
//! staff (`/customers`) and a customer's page (`/customers/:id`) with their bookings, documents,
//! requests, the upload/share form and the request form.
//!
//! Uploads are plain multipart form posts to `POST /documents/upload` (the server streams them to
//! storage), so they work without JavaScript: the server redirects back here with `?uploaded=1`
//! or `?upload=<reason>`. Once hydrated, the form shows that it is uploading until the answer
//! arrives.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::documents::*;
use crate::components::{Badge, ErrorMessage, action_error, load_error};

/// The outcome of the last upload, from the address the server redirected to.
#[component]
fn UploadOutcome(info: UploadInfo) -> impl IntoView {
    let query = use_query_map();
    move || {
        let q = query.read();
        if q.get("uploaded").is_some() {
            Some(view! { <p class="alert alert-success" role="status">"Your file was uploaded."</p> }.into_any())
        } else {
            q.get("upload").map(|code| {
                view! { <p class="alert alert-error" role="alert">{upload_message(&code, &info)}</p> }.into_any()
            })
        }
    }
}

/// The upload form: a plain multipart post, with the file last so the server has read the other
/// fields before the file streams in. `key` keeps ids unique when a page has several forms.
#[component]
fn UploadForm(
    key: String,
    return_to: String,
    info: UploadInfo,
    #[prop(optional)] customer_id: Option<i64>,
    #[prop(optional)] bookings: Vec<BookingOption>,
    /// Fulfils this request: the category comes from it and no booking is asked.
    #[prop(optional)]
    request: Option<(i64, String)>,
    #[prop(optional)] staff: bool,
    #[prop(into)] button: String,
) -> impl IntoView {
    let uploading = RwSignal::new(false);
    let id = move |name: &str| format!("{key}-{name}");
    let hint = format!("{}; at most {} MB.", info.allowed, info.max_mb);
    let label = button.clone();
    view! {
        <form method="post" action="/documents/upload" enctype="multipart/form-data" on:submit=move |_| uploading.set(true)>
            <input type="hidden" name="return_to" value=return_to />
            {customer_id.map(|c| view! { <input type="hidden" name="customer_id" value=c.to_string() /> })}
            {match request {
                Some((rid, category)) => view! {
                    <input type="hidden" name="request_id" value=rid.to_string() />
                    <input type="hidden" name="category" value=category />
                }.into_any(),
                None => view! {
                    <div class="field">
                        <label for=id("category")>"Category"</label>
                        <select id=id("category") name="category" required>
                            <option value="">"Choose…"</option>
                            <option value="agreement">"Agreement"</option>
                            <option value="report">"Report"</option>
                            <option value="invoice">"Invoice"</option>
                            <option value="id">"ID document"</option>
                            <option value="other">"Other"</option>
                        </select>
                    </div>
                    {(!bookings.is_empty()).then(|| view! {
                        <div class="field">
                            <label for=id("booking")>"About a booking (optional)"</label>
                            <select id=id("booking") name="booking_id">
                                <option value="">"No booking"</option>
                                {bookings.into_iter().map(|b| view! { <option value=b.id.to_string()>{b.label}</option> }).collect_view()}
                            </select>
                        </div>
                    })}
                }.into_any(),
            }}
            {staff.then(|| view! {
                <fieldset class="field">
                    <legend>"Who can see it"</legend>
                    <div class="field checkbox">
                        <input id=id("shared") type="radio" name="visibility" value="shared" checked />
                        <label for=id("shared")>"Shared with the customer (they are emailed)"</label>
                    </div>
                    <div class="field checkbox">
                        <input id=id("internal") type="radio" name="visibility" value="internal" />
                        <label for=id("internal")>"Internal: staff only"</label>
                    </div>
                </fieldset>
            })}
            <div class="field">
                <label for=id("file")>"File"</label>
                <input id=id("file") type="file" name="file" required accept=info.accept.clone() aria-describedby=id("hint") />
                <span id=id("hint") class="small muted">{hint}</span>
            </div>
            <button type="submit" class="btn btn-primary" disabled=move || uploading.get()>
                {move || if uploading.get() { "Uploading…".to_string() } else { label.clone() }}
            </button>
            <Show when=move || uploading.get()>
                <p role="status" class="small muted"><progress aria-label="Uploading"></progress>" Uploading; this page changes when the file is stored."</p>
            </Show>
        </form>
    }
}

/// A table of documents with download links and, where allowed, delete (and share for staff).
#[component]
fn DocumentTable(
    documents: Vec<DocumentLine>,
    staff: bool,
    delete: ServerAction<DeleteDocument>,
    #[prop(optional)] share: Option<ServerAction<SetDocumentShared>>,
) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="table">
                <thead>
                    <tr>
                        <th scope="col">"Document"</th>
                        <th scope="col">"Category"</th>
                        <th scope="col">"From"</th>
                        {staff.then(|| view! { <th scope="col">"Visible to the customer"</th> })}
                        <th scope="col">"Booking"</th>
                        <th scope="col">"Uploaded"</th>
                        <th scope="col">"Size"</th>
                        <th scope="col"><span class="sr-only">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>
                    {documents.into_iter().map(|d| {
                        let name = d.name.clone();
                        view! {
                            <tr>
                                <td><a href=d.download_url() download>{d.name.clone()}</a><br /><span class="small muted">{d.kind.clone()}</span></td>
                                <td>{d.category.clone()}</td>
                                <td>{d.uploaded_by.clone()}</td>
                                {staff.then(|| view! {
                                    <td>
                                        {if d.shared { view! { <Badge text="shared" /> }.into_any() } else { view! { <Badge text="internal" /> }.into_any() }}
                                        {share.filter(|_| d.from_business).map(|share| {
                                            let to = !d.shared;
                                            view! {
                                                <ActionForm action=share attr:class="inline-form">
                                                    <input type="hidden" name="id" value=d.id.to_string() />
                                                    <input type="hidden" name="shared" value=to.to_string() />
                                                    <button type="submit" class="btn btn-link" aria-label=format!("{} {}", if to { "Share" } else { "Make internal:" }, name)>
                                                        {if to { "Share" } else { "Make internal" }}
                                                    </button>
                                                </ActionForm>
                                            }
                                        })}
                                    </td>
                                })}
                                <td>{d.booking.clone().unwrap_or_default()}</td>
                                <td>{d.uploaded.clone()}</td>
                                <td>{d.size.clone()}</td>
                                <td>
                                    {d.can_delete.then(|| view! {
                                        <ActionForm action=delete attr:class="inline-form">
                                            <input type="hidden" name="id" value=d.id.to_string() />
                                            <button type="submit" class="btn btn-link" aria-label=format!("Delete {}", d.name)>"Delete"</button>
                                        </ActionForm>
                                    })}
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

/// `/documents`: the customer's documents, what the business asked them for, and the upload form.
#[component]
pub fn MyDocumentsPage() -> impl IntoView {
    let delete = ServerAction::<DeleteDocument>::new();
    let data = Resource::new(move || delete.version().get(), |_| my_documents());
    view! {
        <Title text="Documents" />
        <h1>"Documents"</h1>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(d) if !d.is_customer => view! {
                        <p class="empty-inline">"Customers' documents are on each customer's page."</p>
                        <p><A href="/customers" attr:class="btn">"Customers"</A></p>
                    }.into_any(),
                    Ok(d) => view! {
                        <UploadOutcome info=d.upload.clone() />
                        <ErrorMessage error=action_error(delete) />
                        {(!d.requests.is_empty()).then(|| view! {
                            <section class="card">
                                <h2>"Requested from you"</h2>
                                {d.requests.iter().map(|r| view! {
                                    <article class="request">
                                        <h3>{r.description.clone()}</h3>
                                        <p class=if r.overdue { "small alert alert-error" } else { "small muted" }>
                                            {format!("{} · due by {}{} · asked by {}", r.category, r.due, if r.overdue { " (overdue)" } else { "" }, r.requested_by)}
                                        </p>
                                        <UploadForm key=format!("req{}", r.id) return_to="/documents".into() info=d.upload.clone()
                                            request=(r.id, r.category_code.clone()) button="Upload and send" />
                                    </article>
                                }).collect_view()}
                            </section>
                        })}
                        <section class="card">
                            <h2>"Upload a document"</h2>
                            <p class="muted">"Send us signed agreements, forms or a copy of your ID. Only you and our staff can see what you upload."</p>
                            <UploadForm key="new".into() return_to="/documents".into() info=d.upload.clone() bookings=d.bookings.clone() button="Upload" />
                        </section>
                        <h2>"Your documents"</h2>
                        {if d.documents.is_empty() {
                            view! { <p class="empty-inline">"No documents yet. What you upload, and what we share with you, appears here."</p> }.into_any()
                        } else {
                            view! { <DocumentTable documents=d.documents.clone() staff=false delete=delete /> }.into_any()
                        }}
                    }.into_any(),
                    Err(e) => load_error(&e),
                }
            })}
        </Transition>
    }
}

/// `/customers`: every customer with their document counts; admins also set the retention period.
#[component]
pub fn CustomersPage() -> impl IntoView {
    let query = use_query_map();
    let q = move || query.read().get("q");
    let retention = ServerAction::<SetDocumentRetention>::new();
    let data = Resource::new(
        move || (q(), retention.version().get()),
        |(q, _)| list_customers(q),
    );
    view! {
        <Title text="Customers" />
        <h1>"Customers"</h1>
        <form method="get" action="/customers" class="filters" role="search">
            <div class="field">
                <label for="q">"Name or email"</label>
                <input id="q" name="q" type="search" prop:value=move || q().unwrap_or_default() />
            </div>
            <button type="submit" class="btn">"Search"</button>
        </form>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(list) => view! {
                        {if list.customers.is_empty() {
                            view! { <p class="empty-inline">"No customers match."</p> }.into_any()
                        } else {
                            view! {
                                <div class="table-wrap">
                                    <table class="table">
                                        <thead><tr><th scope="col">"Name"</th><th scope="col">"Email"</th><th scope="col">"Documents"</th><th scope="col">"Open requests"</th><th scope="col">"Account"</th></tr></thead>
                                        <tbody>
                                            {list.customers.clone().into_iter().map(|c| view! {
                                                <tr>
                                                    <td><A href=format!("/customers/{}", c.id)>{c.name.clone()}</A></td>
                                                    <td>{c.email.clone()}</td>
                                                    <td>{c.documents}</td>
                                                    <td>{c.open_requests}</td>
                                                    <td>{if c.active { "active" } else { "closed" }}</td>
                                                </tr>
                                            }).collect_view()}
                                        </tbody>
                                    </table>
                                </div>
                            }.into_any()
                        }}
                        {list.is_admin.then(|| view! {
                            <section class="card">
                                <h2>"Document retention"</h2>
                                <p class="muted">{format!("Documents are stored in {}. Documents of closed accounts are deleted this many days after the account was closed; leave it empty to keep them.", list.storage)}</p>
                                <ActionForm action=retention>
                                    <div class="field">
                                        <label for="retention-days">"Days after closing"</label>
                                        <input id="retention-days" name="days" inputmode="numeric" value=list.retention_days.map(|d| d.to_string()).unwrap_or_default() />
                                    </div>
                                    <ErrorMessage error=action_error(retention) />
                                    <button type="submit" class="btn">"Save"</button>
                                </ActionForm>
                            </section>
                        })}
                    }.into_any(),
                    Err(e) => load_error(&e),
                }
            })}
        </Transition>
    }
}

/// `/customers/:id`: a customer's bookings, documents and requests; share a document with them,
/// keep one internal, or ask them for one.
#[component]
pub fn CustomerPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || {
        params
            .read()
            .get("id")
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let delete = ServerAction::<DeleteDocument>::new();
    let share = ServerAction::<SetDocumentShared>::new();
    let ask = ServerAction::<RequestDocument>::new();
    let cancel = ServerAction::<CancelDocumentRequest>::new();
    let data = Resource::new(
        move || {
            (
                id(),
                delete.version().get(),
                share.version().get(),
                ask.version().get(),
                cancel.version().get(),
            )
        },
        |(id, ..)| customer_documents(id),
    );
    view! {
        <Title text="Customer" />
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(d) => {
                        let c = d.customer.clone();
                        let back = format!("/customers/{}", c.id);
                        view! {
                            <div class="page-head">
                                <h1>{c.name.clone()}</h1>
                                {(!c.active).then(|| view! { <Badge text="closed" /> })}
                            </div>
                            <p class="muted">{c.email.clone()}</p>
                            <UploadOutcome info=d.upload.clone() />
                            <ErrorMessage error=action_error(delete) />
                            <ErrorMessage error=action_error(share) />
                            <h2>"Bookings"</h2>
                            {if d.bookings.is_empty() {
                                view! { <p class="empty-inline">"No bookings yet."</p> }.into_any()
                            } else {
                                view! { <ul>{d.bookings.clone().into_iter().map(|b| view! { <li><A href=format!("/bookings/{}", b.id)>{b.label}</A></li> }).collect_view()}</ul> }.into_any()
                            }}
                            <CustomerExtrasPanel customer_id=c.id />
                            <h2>"Documents"</h2>
                            {if d.documents.is_empty() {
                                view! { <p class="empty-inline">"No documents yet."</p> }.into_any()
                            } else {
                                view! { <DocumentTable documents=d.documents.clone() staff=true delete=delete share=share /> }.into_any()
                            }}
                            <section class="card">
                                <h2>"Share or file a document"</h2>
                                <UploadForm key="staff".into() return_to=back.clone() info=d.upload.clone() customer_id=c.id bookings=d.bookings.clone() staff=true button="Upload" />
                            </section>
                            <section class="card">
                                <h2>"Ask for a document"</h2>
                                <p class="muted">"The customer is emailed now and reminded two days before it is due; the request is fulfilled when they upload."</p>
                                <ActionForm action=ask>
                                    <input type="hidden" name="customer_id" value=c.id.to_string() />
                                    <div class="field">
                                        <label for="req-description">"What do you need?"</label>
                                        <input id="req-description" name="description" required maxlength="300" />
                                    </div>
                                    <div class="field">
                                        <label for="req-category">"Category"</label>
                                        <select id="req-category" name="category">
                                            <option value="agreement">"Agreement"</option>
                                            <option value="id">"ID document"</option>
                                            <option value="invoice">"Invoice"</option>
                                            <option value="report">"Report"</option>
                                            <option value="other" selected>"Other"</option>
                                        </select>
                                    </div>
                                    <div class="field">
                                        <label for="req-due">"Due by"</label>
                                        <input id="req-due" name="due" type="date" required />
                                    </div>
                                    <ErrorMessage error=action_error(ask) />
                                    <button type="submit" class="btn" disabled=move || ask.pending().get()>"Send the request"</button>
                                </ActionForm>
                            </section>
                            <h2>"Requests"</h2>
                            <ErrorMessage error=action_error(cancel) />
                            {if d.requests.is_empty() {
                                view! { <p class="empty-inline">"No requests yet."</p> }.into_any()
                            } else {
                                view! {
                                    <table class="table">
                                        <thead><tr><th scope="col">"What"</th><th scope="col">"Category"</th><th scope="col">"Due by"</th><th scope="col">"Status"</th><th scope="col"><span class="sr-only">"Actions"</span></th></tr></thead>
                                        <tbody>
                                            {d.requests.clone().into_iter().map(|r| view! {
                                                <tr>
                                                    <td>{r.description.clone()}</td>
                                                    <td>{r.category.clone()}</td>
                                                    <td>{r.due.clone()}{r.overdue.then_some(" (overdue)")}</td>
                                                    <td><Badge text=r.status.clone() /></td>
                                                    <td>{(r.status == "open").then(|| view! {
                                                        <ActionForm action=cancel attr:class="inline-form">
                                                            <input type="hidden" name="id" value=r.id.to_string() />
                                                            <button type="submit" class="btn btn-link" aria-label=format!("Withdraw the request: {}", r.description)>"Withdraw"</button>
                                                        </ActionForm>
                                                    })}</td>
                                                </tr>
                                            }).collect_view()}
                                        </tbody>
                                    </table>
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

/// Notes and payment state on a customer's page (staff and admins).
#[component]
fn CustomerExtrasPanel(customer_id: i64) -> impl IntoView {
    let add = ServerAction::<AddCustomerNote>::new();
    let data = Resource::new(
        move || (customer_id, add.version().get()),
        |(id, _)| customer_extras(id),
    );
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(x) => view! {
                        {x.crm.clone().map(|c| view! { <p class="muted">{c}</p> })}
                        <h2>"Payments"</h2>
                        {if x.payments.is_empty() {
                            view! { <p class="empty-inline">"No payments yet."</p> }.into_any()
                        } else {
                            view! {
                                <ul class="audit">
                                    {x.payments.into_iter().map(|p| view! {
                                        <li>{format!("{} · {} · {} ", p.paid.clone().unwrap_or(p.created.clone()), p.service_name, p.amount)}<Badge text=p.status.clone() />" "<A href=format!("/payments/{}", p.id)>"details"</A></li>
                                    }).collect_view()}
                                </ul>
                            }.into_any()
                        }}
                        <section class="card" aria-labelledby="notes-title">
                            <h2 id="notes-title">"Notes"</h2>
                            <p class="muted small">"Seen by staff and admins only; never sent to the customer or the CRM."</p>
                            <ActionForm action=add>
                                <input type="hidden" name="customer_id" value=customer_id.to_string() />
                                <div class="field">
                                    <label for="note-body">"New note"</label>
                                    <textarea id="note-body" name="body" required maxlength="2000" rows="3"></textarea>
                                </div>
                                <ErrorMessage error=action_error(add) />
                                <button type="submit" class="btn" disabled=move || add.pending().get()>{move || if add.pending().get() { "Saving…" } else { "Add note" }}</button>
                            </ActionForm>
                            <ul class="audit">
                                {x.notes.into_iter().map(|n| view! { <li>{format!("{} · {}: {}", n.at, n.author, n.body)}</li> }).collect_view()}
                            </ul>
                        </section>
                    }.into_any(),
                    Err(e) => load_error(&e),
                }
            })}
        </Transition>
    }
}
