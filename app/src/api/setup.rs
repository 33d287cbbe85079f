//! Admin set-up for bookings: the business's settings, services and who offers them, staff
//! working hours, and the list of all bookings.
// Server functions take a form's fields as their arguments, so some forms make long lists; the
// server macro does not carry an item-level allow over to the browser's side of the function.
#![allow(clippy::too_many_arguments)]

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::api::booking::BookingRow;
use model::error::AppError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAdmin {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub duration_min: i32,
    pub buffer_before_min: i32,
    pub buffer_after_min: i32,
    /// Price in major units as typed, e.g. `450.00`.
    pub price: String,
    pub deposit_kind: String,
    /// Fixed amount (`100.00`) or percentage (`25`).
    pub deposit_value: String,
    pub min_notice_min: i32,
    pub horizon_days: i32,
    pub active: bool,
    pub staff_ids: Vec<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffHours {
    pub id: i64,
    pub name: String,
    /// Monday first: ranges as text, e.g. `09:00-12:00, 13:00-17:00`.
    pub days: Vec<String>,
    /// Their own IANA zone, or empty for the business's.
    pub time_zone: String,
    /// Days off, changed days and time off, as `(id, description)`.
    pub exceptions: Vec<(i64, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupPage {
    pub services: Vec<ServiceAdmin>,
    pub staff: Vec<StaffHours>,
    pub time_zone: String,
    pub currency: String,
    pub vat_percent: String,
    pub prices_include_vat: bool,
    pub free_change_hours: i64,
    pub hold_minutes: i64,
    pub reminder_hours: i64,
}

#[cfg(feature = "ssr")]
async fn admin() -> Result<domain::auth::UserRecord, AppError> {
    crate::ssr::guard::require_role(model::Role::Admin).await
}

/// Parses `450`, `450.5` or `450.50` into minor units.
pub fn parse_money(s: &str) -> Option<i64> {
    let s = s.trim().trim_start_matches('R').trim();
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || frac.len() > 2
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let frac: i64 = format!("{frac:0<2}").parse().ok()?;
    whole.checked_mul(100)?.checked_add(frac)
}

#[server(prefix = "/api", endpoint = "get_setup")]
pub async fn get_setup() -> Result<SetupPage, AppError> {
    use crate::ssr::state;
    use domain::{booking as bk, catalog};
    admin().await?;
    let db = state().db.clone();
    let biz = bk::business(&db).await?;
    let mut services = Vec::new();
    for s in bk::services(&db, false).await? {
        let staff_ids = catalog::service_staff_ids(&db, s.id).await?;
        services.push(ServiceAdmin {
            id: s.id,
            name: s.name.clone(),
            description: s.description.clone(),
            duration_min: s.duration_min,
            buffer_before_min: s.buffer_before_min,
            buffer_after_min: s.buffer_after_min,
            price: format!("{}.{:02}", s.price_cents / 100, s.price_cents % 100),
            deposit_kind: s.deposit_kind.clone(),
            deposit_value: match s.deposit_kind.as_str() {
                "fixed" => format!("{}.{:02}", s.deposit_value / 100, s.deposit_value % 100),
                "percent" => format!("{}", s.deposit_value / 100),
                _ => String::new(),
            },
            min_notice_min: s.min_notice_min,
            horizon_days: s.horizon_days,
            active: s.active,
            staff_ids,
        });
    }
    let hm = |m: Option<i32>| {
        m.map(|m| format!("{:02}:{:02}", m / 60, m % 60))
            .unwrap_or_default()
    };
    let mut staff = Vec::new();
    for person in catalog::staff_schedules(&db).await? {
        let mut days = vec![Vec::<String>::new(); 7];
        for (d, s, e) in &person.hours {
            days[(*d).clamp(0, 6) as usize].push(format!(
                "{:02}:{:02}-{:02}:{:02}",
                s / 60,
                s % 60,
                e / 60,
                e % 60
            ));
        }
        let exceptions = person
            .exceptions
            .iter()
            .map(|e| {
                let date = e.local_date.clone().unwrap_or_default();
                let text = match e.kind.as_str() {
                    "day_off" => format!("{date} off"),
                    "changed_day" => {
                        format!("{date} works {}-{} instead", hm(e.start_min), hm(e.end_min))
                    }
                    _ => format!(
                        "away {} to {}",
                        bk::local_time(e.start_at.unwrap_or(0), biz.tz),
                        bk::local_time(e.end_at.unwrap_or(0), biz.tz)
                    ),
                };
                let shown = if e.note.is_empty() {
                    text
                } else {
                    format!("{text} ({})", e.note)
                };
                (e.id, shown)
            })
            .collect();
        staff.push(StaffHours {
            id: person.id,
            name: person.name,
            days: days.into_iter().map(|d| d.join(", ")).collect(),
            time_zone: person.time_zone,
            exceptions,
        });
    }
    Ok(SetupPage {
        services,
        staff,
        time_zone: biz.tz.name().to_owned(),
        currency: biz.currency,
        vat_percent: format!("{}.{:02}", biz.vat_rate_bp / 100, biz.vat_rate_bp % 100),
        prices_include_vat: biz.prices_include_vat,
        free_change_hours: biz.free_change_hours,
        hold_minutes: biz.hold_minutes,
        reminder_hours: biz.reminder_hours,
    })
}

/// Creates (no id) or updates a service.
#[server(prefix = "/api", endpoint = "save_service")]
pub async fn save_service(
    id: Option<i64>,
    name: String,
    description: Option<String>,
    duration_min: i32,
    buffer_before_min: Option<i32>,
    buffer_after_min: Option<i32>,
    price: String,
    deposit_kind: String,
    deposit_value: Option<String>,
    min_notice_min: Option<i32>,
    horizon_days: Option<i32>,
    active: Option<String>,
) -> Result<(), AppError> {
    use crate::ssr::state;

    let me = admin().await?;
    let bad = |m: &str| AppError::Invalid(m.into());
    let name = name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(bad("Give the service a name of up to 100 characters."));
    }
    if !(5..=720).contains(&duration_min) {
        return Err(bad("The duration must be between 5 and 720 minutes."));
    }
    let (before, after) = (
        buffer_before_min.unwrap_or(0),
        buffer_after_min.unwrap_or(0),
    );
    if !(0..=240).contains(&before) || !(0..=240).contains(&after) {
        return Err(bad("Buffers must be between 0 and 240 minutes."));
    }
    let price_cents = parse_money(&price).ok_or_else(|| bad("Write the price like 450.00."))?;
    let deposit_value = match deposit_kind.as_str() {
        "none" => 0,
        "fixed" => parse_money(deposit_value.as_deref().unwrap_or(""))
            .filter(|v| *v <= price_cents)
            .ok_or_else(|| bad("Write the deposit like 100.00, at most the price."))?,
        "percent" => deposit_value
            .as_deref()
            .unwrap_or("")
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|p| (1..=100).contains(p))
            .map(|p| p * 100)
            .ok_or_else(|| bad("The deposit percentage must be between 1 and 100."))?,
        _ => return Err(bad("Choose no deposit, a fixed amount or a percentage.")),
    };
    let notice = min_notice_min.unwrap_or(60).clamp(0, 60 * 24 * 30);
    let horizon = horizon_days.unwrap_or(60).clamp(1, 365);
    let active = active.as_deref() == Some("on");
    let description = description
        .unwrap_or_default()
        .trim()
        .chars()
        .take(1000)
        .collect::<String>();
    let input = domain::catalog::ServiceInput {
        name,
        description,
        duration_min,
        buffer_before_min: before,
        buffer_after_min: after,
        price_cents,
        deposit_kind,
        deposit_value,
        min_notice_min: notice,
        horizon_days: horizon,
        active,
    };
    domain::catalog::save_service(&state().db, me.id, id, &input).await?;
    Ok(())
}

/// Whether a member of staff offers a service.
#[server(prefix = "/api", endpoint = "set_service_staff")]
pub async fn set_service_staff(
    service_id: i64,
    staff_id: i64,
    offered: bool,
) -> Result<(), AppError> {
    use crate::ssr::state;

    let me = admin().await?;
    let st = state();
    domain::catalog::set_service_staff(&st.db, me.id, service_id, staff_id, offered).await
}

/// Sets a member of staff's weekly hours: one text per weekday, Monday first, ranges like
/// `09:00-12:00, 13:00-17:00`; empty means not working that day. `time_zone` is their own zone
/// (empty: the business's), in which the hours are read.
#[server(prefix = "/api", endpoint = "save_hours")]
pub async fn save_hours(
    staff_id: i64,
    mon: Option<String>,
    tue: Option<String>,
    wed: Option<String>,
    thu: Option<String>,
    fri: Option<String>,
    sat: Option<String>,
    sun: Option<String>,
    time_zone: Option<String>,
) -> Result<(), AppError> {
    use crate::ssr::state;

    use std::str::FromStr;
    let me = admin().await?;
    let zone = match time_zone.as_deref().map(str::trim).filter(|z| !z.is_empty()) {
        Some(z) => Some(
            slots::Tz::from_str(z)
                .map_err(|_| AppError::Invalid(format!("{z:?} is not a time zone; use a name like Africa/Johannesburg, or leave it empty.")))?
                .name()
                .to_owned(),
        ),
        None => None,
    };
    let days = [mon, tue, wed, thu, fri, sat, sun];
    let names = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let mut parsed = Vec::new();
    for (i, d) in days.iter().enumerate() {
        for part in d
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let r = slots::LocalRange::parse(part).map_err(|_| {
                AppError::Invalid(format!(
                    "{}: write hours like 09:00-12:00, separated by commas ({part:?} is not).",
                    names[i]
                ))
            })?;
            parsed.push((i as i32, i32::from(r.start_min()), i32::from(r.end_min())));
        }
    }
    domain::catalog::save_hours(&state().db, me.id, staff_id, &parsed, zone).await
}

/// Adds an exception to a member of staff's hours: a day off, a changed day (other hours on that
/// date), or time off between two times on a date. Dates and times are local to the business.
#[server(prefix = "/api", endpoint = "add_exception")]
pub async fn add_exception(
    staff_id: i64,
    kind: String,
    date: String,
    from: Option<String>,
    to: Option<String>,
    note: Option<String>,
) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::booking as bk;
    use slots::chrono::{NaiveDate, NaiveTime, TimeZone};
    let me = admin().await?;
    let bad = |m: &str| AppError::Invalid(m.into());
    let day =
        NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d").map_err(|_| bad("Choose a date."))?;
    let time = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| NaiveTime::parse_from_str(t.trim(), "%H:%M").ok())
    };
    let st = state();
    let biz = bk::business(&st.db).await?;
    let note: String = note.unwrap_or_default().trim().chars().take(200).collect();
    let (start_min, end_min, start_at, end_at): (
        Option<i32>,
        Option<i32>,
        Option<i64>,
        Option<i64>,
    ) = match kind.as_str() {
        "day_off" => (None, None, None, None),
        "changed_day" | "time_off" => {
            let (Some(f), Some(t)) = (time(&from), time(&to)) else {
                return Err(bad("Give the from and to times, like 09:00 and 13:00."));
            };
            if f >= t {
                return Err(bad("The end time must be after the start time."));
            }
            if kind == "changed_day" {
                use slots::chrono::Timelike;
                (
                    Some((f.hour() * 60 + f.minute()) as i32),
                    Some((t.hour() * 60 + t.minute()) as i32),
                    None,
                    None,
                )
            } else {
                let at = |tm: NaiveTime| {
                    biz.tz
                        .from_local_datetime(&day.and_time(tm))
                        .earliest()
                        .map(|x| x.timestamp_millis())
                };
                let (Some(s), Some(e)) = (at(f), at(t)) else {
                    return Err(bad(
                        "That time does not exist on that day (daylight saving).",
                    ));
                };
                (None, None, Some(s), Some(e))
            }
        }
        _ => return Err(bad("Choose a day off, changed hours or time off.")),
    };
    let exception = domain::catalog::NewException {
        kind,
        local_date: day.format("%Y-%m-%d").to_string(),
        start_min,
        end_min,
        start_at,
        end_at,
        note,
    };
    domain::catalog::add_exception(&st.db, me.id, staff_id, &exception).await
}

#[server(prefix = "/api", endpoint = "remove_exception")]
pub async fn remove_exception(id: i64) -> Result<(), AppError> {
    use crate::ssr::state;

    let me = admin().await?;
    let st = state();
    domain::catalog::remove_exception(&st.db, me.id, id).await
}

/// The business's booking settings.
#[server(prefix = "/api", endpoint = "save_business")]
pub async fn save_business(
    time_zone: String,
    currency: String,
    vat_percent: String,
    prices_include_vat: Option<String>,
    free_change_hours: i64,
    hold_minutes: i64,
    reminder_hours: i64,
) -> Result<(), AppError> {
    use crate::ssr::state;

    use std::str::FromStr;
    let me = admin().await?;
    let bad = |m: String| AppError::Invalid(m);
    let tz = slots::Tz::from_str(time_zone.trim()).map_err(|_| {
        bad(format!(
            "{time_zone:?} is not a time zone; use a name like Africa/Johannesburg."
        ))
    })?;
    let currency = currency.trim().to_uppercase();
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(bad("Use a three-letter currency code like ZAR.".into()));
    }
    let vat_bp = parse_money(&vat_percent)
        .filter(|v| *v <= 10_000)
        .ok_or_else(|| bad("Write the VAT rate as a percentage like 15.00.".into()))?;
    if !(0..=720).contains(&free_change_hours)
        || !(5..=1440).contains(&hold_minutes)
        || !(0..=168).contains(&reminder_hours)
    {
        return Err(bad(
            "Free changes: 0-720 hours; holds: 5-1440 minutes; reminders: 0-168 hours before."
                .into(),
        ));
    }
    let input = domain::catalog::BusinessInput {
        time_zone: tz.name().to_owned(),
        currency,
        vat_rate_bp: vat_bp,
        prices_include_vat: prices_include_vat.as_deref() == Some("on"),
        free_change_hours,
        hold_minutes,
        reminder_hours,
    };
    domain::catalog::save_business(&state().db, me.id, &input).await
}

/// All bookings, optionally by status, staff member and dates (`YYYY-MM-DD`, in the business's
/// zone, `to` inclusive), newest start first (at most 500).
#[server(prefix = "/api", endpoint = "admin_bookings")]
pub async fn admin_bookings(
    status: Option<String>,
    staff: Option<i64>,
    from: Option<String>,
    to: Option<String>,
) -> Result<Vec<BookingRow>, AppError> {
    use crate::ssr::state;
    use domain::booking as bk;
    use slots::chrono::{Duration, NaiveDate, TimeZone};
    admin().await?;
    let db = state().db.clone();
    let biz = bk::business(&db).await?;
    let day = |d: Option<String>| {
        d.as_deref()
            .and_then(|d| NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").ok())
    };
    let start_of = |d: NaiveDate| {
        biz.tz
            .from_local_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight"))
            .earliest()
            .map(|t| t.timestamp_millis())
    };
    let status = match status.filter(|s| !s.is_empty()) {
        // A status no booking can have matches nothing.
        Some(s) => match model::BookingStatus::parse(&s) {
            Some(st) => Some(st),
            None => return Ok(Vec::new()),
        },
        None => None,
    };
    let filter = bk::BookingFilter {
        statuses: status.into_iter().collect(),
        staff_id: staff,
        from_ms: day(from).and_then(start_of),
        to_ms: day(to).and_then(|d| start_of(d + Duration::days(1))),
        ..Default::default()
    };
    let rows = bk::filtered(&db, &filter, 500).await?;
    let mut out: Vec<BookingRow> = rows
        .iter()
        .map(|b| crate::api::booking::ssr_row(b, &biz))
        .collect();
    out.reverse();
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn money_parses_in_minor_units() {
        assert_eq!(super::parse_money("450"), Some(45_000));
        assert_eq!(super::parse_money("450.5"), Some(45_050));
        assert_eq!(super::parse_money("R 450.05"), Some(45_005));
        assert_eq!(super::parse_money("4.505"), None);
        assert_eq!(super::parse_money("-1"), None);
        assert_eq!(super::parse_money(""), None);
    }
}
