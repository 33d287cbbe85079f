//! What every page's layout needs.

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::SiteInfo;

/// Branding, the signed-in user and, for admins, the integration alert banner.
#[server(prefix = "/api", endpoint = "site_info")]
pub async fn get_site_info() -> Result<SiteInfo, AppError> {
    use crate::model::Role;
    use crate::ssr::{auth, ledger, state};
    let st = state();
    let user = auth::current_user().await?;
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
