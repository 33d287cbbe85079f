//! Documents: a customer's documents and open requests, the customer list and a customer's page
//! for staff, deleting, sharing, asking a customer for a document, and the retention period.
//!
//! Uploads and downloads are not server functions: they stream, so they are axum routes in the
//! server crate (`POST /documents/upload`, `GET /documents/{id}/download`). This module holds the
//! messages those routes' refusals map to, so pages and routes say the same thing.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use model::error::AppError;

/// A document as lists show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentLine {
    pub id: i64,
    pub name: String,
    pub category: String,
    pub kind: String,
    pub size: String,
    pub uploaded: String,
    pub uploaded_by: String,
    /// Uploaded by staff (rather than by the customer).
    pub from_business: bool,
    pub shared: bool,
    pub booking: Option<String>,
    pub can_delete: bool,
}

impl DocumentLine {
    pub fn download_url(&self) -> String {
        format!("/documents/{}/download", self.id)
    }
}

/// A request for a document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestLine {
    pub id: i64,
    pub description: String,
    pub category: String,
    pub category_code: String,
    pub due: String,
    pub overdue: bool,
    /// `open`, `fulfilled` or `cancelled`.
    pub status: String,
    pub requested_by: String,
}

/// What the upload form needs to say.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadInfo {
    pub max_mb: u64,
    /// "PDF, JPEG, PNG, HEIC, Word (.docx) and Excel (.xlsx)".
    pub allowed: String,
    /// The file picker's `accept` list.
    pub accept: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingOption {
    pub id: i64,
    pub label: String,
}

/// `/documents` for a customer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MyDocumentsView {
    /// False for staff and admins, whose documents work happens on each customer's page.
    pub is_customer: bool,
    pub documents: Vec<DocumentLine>,
    pub requests: Vec<RequestLine>,
    pub bookings: Vec<BookingOption>,
    pub upload: UploadInfo,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerLine {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub active: bool,
    pub documents: i64,
    pub open_requests: i64,
}

/// `/customers` for staff and admins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerList {
    pub customers: Vec<CustomerLine>,
    pub is_admin: bool,
    /// Admins only: the retention period for closed accounts' documents, in days.
    pub retention_days: Option<i64>,
    /// Admins only: where documents are stored.
    pub storage: String,
}

/// `/customers/:id` for staff and admins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerDocumentsView {
    pub customer: CustomerLine,
    pub bookings: Vec<BookingOption>,
    pub documents: Vec<DocumentLine>,
    pub requests: Vec<RequestLine>,
    pub upload: UploadInfo,
}

/// Why an upload was refused, as the short code the upload route redirects with
/// (`?upload=too_large`), so pages show a fixed message rather than text from the address bar.
pub fn upload_message(code: &str, info: &UploadInfo) -> String {
    match code {
        "empty" => "That file is empty. Choose the file again and check that it opens on your device.".into(),
        "too_large" => format!(
            "That file is larger than {} MB, so it was not uploaded. Please make it smaller (for example, scan at a lower resolution) or send it in parts.",
            info.max_mb
        ),
        "type" => format!(
            "That type of file can't be uploaded. You can upload {}.",
            info.allowed
        ),
        "mismatch" => "The file's content doesn't match its name (for example, a picture renamed to .pdf). Save it in its real format and try again.".into(),
        "name" => "The file's name can't be used: it has folder parts or control characters, no extension, or more than 200 characters. Rename the file and try again.".into(),
        "no_file" => "Choose a file to upload.".into(),
        "form" => "The upload form was incomplete: choose a category for the document.".into(),
        "not_found" => "We couldn't find that customer, booking or request.".into(),
        "unavailable" => "We couldn't store your file just now because document storage is unreachable. Nothing was saved; please try again in a few minutes.".into(),
        _ => "Something went wrong on our side and the file was not saved. Please try again in a moment.".into(),
    }
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::*;
    use domain::auth::UserRecord;
    use domain::booking::{Business, local_time};
    use domain::documents::{self as docs, Document, DocumentLimits, Request};
    use model::Role;

    pub fn upload_info(l: &DocumentLimits) -> UploadInfo {
        UploadInfo {
            max_mb: l.max_mb(),
            allowed: l.allowed_labels(),
            accept: l.accept(),
        }
    }

    pub fn line(
        d: &Document,
        biz: &Business,
        viewer: &UserRecord,
        booking: Option<String>,
    ) -> DocumentLine {
        let kind = docs::Kind::parse(&d.kind)
            .map(|k| k.label())
            .unwrap_or("file");
        DocumentLine {
            id: d.id,
            name: d.display_name.clone(),
            category: docs::category_label(&d.category).into(),
            kind: kind.into(),
            size: docs::human_size(d.size_bytes),
            uploaded: local_time(d.created_at, biz.tz),
            uploaded_by: if viewer.role == Role::Customer && d.uploader_role != Role::Customer {
                "us".into()
            } else if d.uploaded_by == viewer.id {
                "you".into()
            } else {
                d.uploader_name.clone()
            },
            from_business: d.uploader_role != Role::Customer,
            shared: d.shared(),
            booking,
            can_delete: docs::can_delete(viewer, d),
        }
    }

    pub fn request_line(r: &Request, biz: &Business) -> RequestLine {
        RequestLine {
            id: r.id,
            description: r.description.clone(),
            category: docs::category_label(&r.category).into(),
            category_code: r.category.clone(),
            due: local_time(r.due_at, biz.tz),
            overdue: r.status == "open" && r.due_at < domain::db::now_ms(),
            status: r.status.clone(),
            requested_by: r.requested_by_name.clone(),
        }
    }

    /// A customer's bookings for the "about which booking" choice, newest first.
    pub async fn booking_options<C: sea_orm::ConnectionTrait>(
        conn: &C,
        biz: &Business,
        customer_id: i64,
    ) -> Result<Vec<BookingOption>, sea_orm::DbErr> {
        use model::BookingStatus as S;
        let filter = domain::booking::BookingFilter {
            customer_id: Some(customer_id),
            statuses: vec![
                S::AwaitingDeposit,
                S::Confirmed,
                S::Completed,
                S::NoShow,
                S::Cancelled,
            ],
            ..Default::default()
        };
        let mut list = domain::booking::filtered(conn, &filter, 200).await?;
        list.reverse();
        Ok(list
            .into_iter()
            .map(|b| BookingOption {
                id: b.id,
                label: format!(
                    "{}, {} ({})",
                    b.service_name,
                    local_time(b.start_ms, biz.tz),
                    b.status.words()
                ),
            })
            .collect())
    }

    pub fn lines(
        biz: &Business,
        viewer: &UserRecord,
        list: &[Document],
        bookings: &[BookingOption],
    ) -> Vec<DocumentLine> {
        list.iter()
            .map(|d| {
                let booking = d.booking_id.map(|b| {
                    bookings
                        .iter()
                        .find(|o| o.id == b)
                        .map(|o| o.label.clone())
                        .unwrap_or_else(|| format!("booking {b}"))
                });
                line(d, biz, viewer, booking)
            })
            .collect()
    }

    pub fn customer_line(c: domain::customers::CustomerSummary) -> CustomerLine {
        CustomerLine {
            id: c.id,
            name: c.name,
            email: c.email,
            active: c.status == "active",
            documents: c.documents,
            open_requests: c.open_requests,
        }
    }
}

/// The signed-in user's documents page: for a customer, their documents (shared with them or
/// uploaded by them), open requests and bookings to tie an upload to.
#[server(prefix = "/api", endpoint = "my_documents")]
pub async fn my_documents() -> Result<MyDocumentsView, AppError> {
    use crate::ssr::state;
    use domain::{booking as bk, documents as docs};
    use model::Role;
    let me = crate::ssr::guard::require_user().await?;
    let st = state();
    let upload = ssr::upload_info(&st.settings.documents);
    if me.role != Role::Customer {
        return Ok(MyDocumentsView {
            is_customer: false,
            documents: vec![],
            requests: vec![],
            bookings: vec![],
            upload,
        });
    }
    let biz = bk::business(&st.db).await?;
    let bookings = ssr::booking_options(&st.db, &biz, me.id).await?;
    let list = docs::list_for_customer(&st.db, me.id, true).await?;
    let documents = ssr::lines(&biz, &me, &list, &bookings);
    let requests = docs::requests_for_customer(&st.db, me.id, true)
        .await?
        .iter()
        .map(|r| ssr::request_line(r, &biz))
        .collect();
    Ok(MyDocumentsView {
        is_customer: true,
        documents,
        requests,
        bookings,
        upload,
    })
}

/// Customers, with their document and open-request counts; `q` searches names and emails.
#[server(prefix = "/api", endpoint = "list_customers")]
pub async fn list_customers(q: Option<String>) -> Result<CustomerList, AppError> {
    use crate::ssr::state;
    use domain::documents as docs;
    use model::Role;
    let me = crate::ssr::guard::require_role(Role::Staff).await?;
    let st = state();
    let customers = domain::customers::list(&st.db, &q.unwrap_or_default())
        .await?
        .into_iter()
        .map(ssr::customer_line)
        .collect();
    let is_admin = me.role == Role::Admin;
    Ok(CustomerList {
        customers,
        is_admin,
        retention_days: if is_admin {
            docs::retention_days(&st.db).await?
        } else {
            None
        },
        storage: if is_admin {
            st.settings.documents.storage_description.clone()
        } else {
            String::new()
        },
    })
}

/// A customer's page for staff: bookings, every document (shared and internal), requests.
#[server(prefix = "/api", endpoint = "customer_documents")]
pub async fn customer_documents(id: i64) -> Result<CustomerDocumentsView, AppError> {
    use crate::ssr::state;
    use domain::{booking as bk, documents as docs};
    use model::Role;
    let me = crate::ssr::guard::require_role(Role::Staff).await?;
    let st = state();
    let customer = domain::customers::one(&st.db, id)
        .await?
        .map(ssr::customer_line)
        .ok_or(AppError::NotFound)?;
    // Reading a customer's page is access to their data: audited for the incident report.
    domain::audit::record_access(
        &st.db,
        me.id,
        "customer.viewed",
        id,
        ("user", &id.to_string()),
        "opened the customer's page",
    )
    .await?;
    let biz = bk::business(&st.db).await?;
    let bookings = ssr::booking_options(&st.db, &biz, id).await?;
    let list = docs::list_for_customer(&st.db, id, false).await?;
    let documents = ssr::lines(&biz, &me, &list, &bookings);
    let requests = docs::requests_for_customer(&st.db, id, false)
        .await?
        .iter()
        .map(|r| ssr::request_line(r, &biz))
        .collect();
    Ok(CustomerDocumentsView {
        customer,
        bookings,
        documents,
        requests,
        upload: ssr::upload_info(&st.settings.documents),
    })
}

/// Deletes a document (its uploader if a customer, or staff): gone from every list at once; the
/// file is removed from storage by a job.
#[server(prefix = "/api", endpoint = "delete_document")]
pub async fn delete_document(id: i64) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::documents as docs;
    let me = crate::ssr::guard::require_user().await?;
    docs::delete(&state().db, &me, id).await
}

/// Shares an internal document with its customer (they are emailed), or makes it internal.
#[server(prefix = "/api", endpoint = "set_document_shared")]
pub async fn set_document_shared(id: i64, shared: bool) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::documents as docs;
    use model::Role;
    let me = crate::ssr::guard::require_role(Role::Staff).await?;
    let st = state();
    docs::set_shared(&st.db, &st.settings, &me, id, shared).await
}

/// Asks a customer for a document by a date; they are emailed now and reminded before it is due.
#[server(prefix = "/api", endpoint = "request_document")]
pub async fn request_document(
    customer_id: i64,
    description: String,
    category: String,
    due: String,
) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::documents as docs;
    use model::Role;
    let me = crate::ssr::guard::require_role(Role::Staff).await?;
    let st = state();
    docs::create_request(
        &st.db,
        &st.settings,
        &me,
        customer_id,
        &description,
        &category,
        &due,
    )
    .await?;
    Ok(())
}

/// Withdraws an open request.
#[server(prefix = "/api", endpoint = "cancel_document_request")]
pub async fn cancel_document_request(id: i64) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::documents as docs;
    use model::Role;
    let me = crate::ssr::guard::require_role(Role::Staff).await?;
    docs::cancel_request(&state().db, &me, id).await
}

/// Sets how many days after an account is closed its documents are deleted (empty: kept).
#[server(prefix = "/api", endpoint = "set_document_retention")]
pub async fn set_document_retention(days: String) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::documents as docs;
    use model::Role;
    let me = crate::ssr::guard::require_role(Role::Admin).await?;
    let days = match days.trim() {
        "" => None,
        d => Some(d.parse::<i64>().map_err(|_| {
            AppError::Invalid(
                "Type the number of days, or leave it empty to keep documents.".into(),
            )
        })?),
    };
    docs::set_retention_days(&state().db, &me, days).await
}

/// A staff note about a customer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NoteLine {
    pub body: String,
    pub author: String,
    pub at: String,
}

/// What staff see next to a customer's documents: notes and the payment state.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CustomerSideInfo {
    pub notes: Vec<NoteLine>,
    pub payments: Vec<crate::api::payments::PaymentLine>,
    pub crm: Option<String>,
}

#[server(prefix = "/api", endpoint = "customer_extras")]
pub async fn customer_extras(customer_id: i64) -> Result<CustomerSideInfo, AppError> {
    use crate::ssr::state;
    use domain::{booking as bk, payments};
    use model::Role;
    let st = state();
    crate::ssr::guard::require_role(Role::Staff).await?;
    let biz = bk::business(&st.db).await?;
    let notes = domain::customers::notes(&st.db, customer_id)
        .await?
        .into_iter()
        .map(|n| NoteLine {
            body: n.body,
            author: n.author,
            at: bk::local_time(n.created_at, biz.tz),
        })
        .collect();
    let list = payments::of_customer(&st.db, customer_id, &[], 50).await?;
    let crm = domain::crm::view(&st.db, customer_id).await?;
    let crm = crm.lifecycle_stage.map(|s| format!("CRM stage: {s}"));
    Ok(CustomerSideInfo {
        notes,
        payments: crate::api::payments::ssr::lines(&st.db, &biz, &list).await?,
        crm,
    })
}

/// Staff add a note about a customer (kept in the portal, never sent anywhere). Audited.
#[server(prefix = "/api", endpoint = "add_customer_note")]
pub async fn add_customer_note(customer_id: i64, body: String) -> Result<(), AppError> {
    use crate::ssr::state;

    use model::Role;
    let st = state();
    let me = crate::ssr::guard::require_role(Role::Staff).await?;
    let body = body.trim();
    if body.is_empty() || body.chars().count() > 2000 {
        return Err(AppError::Invalid(
            "Write a note of up to 2,000 characters.".into(),
        ));
    }
    domain::customers::add_note(&st.db, me.id, customer_id, body).await
}
