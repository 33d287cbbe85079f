//! What every page's layout needs.

use leptos::prelude::*;

use model::SiteInfo;
use model::error::AppError;

/// Branding, the signed-in user and, for admins, the integration alert banner.
#[server(prefix = "/api", endpoint = "site_info")]
pub async fn get_site_info() -> Result<SiteInfo, AppError> {
    use crate::ssr::state;
    use domain::ledger;
    use model::Role;
    let st = state();
    let user = crate::ssr::guard::current_user().await?;
    let admin_alert = match &user {
        Some(u) if u.role == Role::Admin => ledger::admin_alert(&st.db).await?,
        _ => None,
    };
    Ok(SiteInfo {
        branding: st.settings.branding.clone(),
        user: user.map(|u| u.to_current()),
        admin_alert,
        demo: st.settings.demo,
    })
}

/// The privacy notice in paragraphs: the business's own (`privacy_notice_path`), or the
/// template that ships, filled in with the business's name. Shown before any personal
/// information is collected.
#[server(prefix = "/api", endpoint = "privacy_notice")]
pub async fn privacy_notice() -> Result<Vec<String>, AppError> {
    let st = crate::ssr::state();
    if let Some(own) = &st.settings.privacy_notice {
        return Ok(own.clone());
    }
    let business = &st.settings.branding.business_name;
    Ok(vec![
        format!("{business} (the responsible party) collects your name, email address and, if you give them, your phone number and company, to create your account, manage your bookings, take deposits and send you messages about them. The documents you upload are kept for the service you booked."),
        "We keep your information only as long as we need it for these purposes or as the law requires (for example, payment records, which are kept without your name). You may download, correct or ask us to delete it at any time from your account page.".into(),
        "Our service providers process some of it for us, and only what each needs: card payments are handled by Stripe; email is delivered by our email provider; your name, contact details and booking summary are kept in our customer relationship system; documents are stored with our storage provider. Some of them store information outside South Africa; they are bound by agreements that protect it as POPIA (section 72) requires.".into(),
        "Marketing messages are sent only if you choose to receive them, and you can withdraw that choice at any time. If you have a concern, contact us first; you may also complain to the Information Regulator.".into(),
    ])
}
