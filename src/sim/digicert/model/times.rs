//! Times as the API writes them, and the simulator's whole-second clock.

use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime, Time};

pub(crate) fn whole_seconds(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(0).unwrap_or(at)
}

/// 23:59:59 of `at`'s day.
pub(crate) fn end_of_day(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_time(Time::MIDNIGHT) + Duration::days(1) - Duration::seconds(1)
}

/// `2018-10-16T20:05:28+00:00`.
pub(crate) fn iso(at: OffsetDateTime) -> String {
    at.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]+00:00"
    ))
    .unwrap_or_default()
}

/// `2018-10-16T20:05:28Z` (the `YYYY-MM-DDTHH:MM:SSZ` of the DCV random value's expiry).
pub(crate) fn iso_z(at: OffsetDateTime) -> String {
    at.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .unwrap_or_default()
}

/// `2018-10-16`.
pub(crate) fn date(at: OffsetDateTime) -> String {
    at.format(format_description!("[year]-[month]-[day]"))
        .unwrap_or_default()
}

/// `2019-06-21 13:37:00`.
pub(crate) fn spaced(at: OffsetDateTime) -> String {
    at.format(format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second]"
    ))
    .unwrap_or_default()
}

/// Parse `YYYY-MM-DD`.
pub(crate) fn parse_date(text: &str) -> Option<Date> {
    Date::parse(text.trim(), format_description!("[year]-[month]-[day]")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let at = time::macros::datetime!(2019-06-21 13:37:00 UTC);
        assert_eq!(iso(at), "2019-06-21T13:37:00+00:00");
        assert_eq!(date(at), "2019-06-21");
        assert_eq!(spaced(at), "2019-06-21 13:37:00");
        assert_eq!(parse_date("2024-02-29").map(|d| d.day()), Some(29));
        assert!(parse_date("2024-02-30").is_none());
    }
}
