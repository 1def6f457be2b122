//! US Eastern Time, the clock of Postmark's read APIs: `fromdate`/`todate` are read in it and
//! `ReceivedAt`/`BouncedAt` carry its offset. Done by hand (the US rule since 2007) to avoid a time-zone
//! database for one zone.

use chrono::{
    DateTime, Datelike as _, FixedOffset, NaiveDate, NaiveDateTime, Offset as _, TimeZone as _, Utc,
};

const EST: i32 = -5 * 3600;
const EDT: i32 = -4 * 3600;

/// The `n`-th Sunday (1-based) of a month.
fn nth_sunday(year: i32, month: u32, n: u32) -> NaiveDate {
    let first = NaiveDate::from_ymd_opt(year, month, 1).unwrap_or_default();
    let to_sunday = (7 - first.weekday().num_days_from_sunday()) % 7;
    first + chrono::Days::new(u64::from(to_sunday + 7 * (n - 1)))
}

/// Daylight saving time runs from the second Sunday of March, 02:00 EST (07:00 UTC), to the
/// first Sunday of November, 02:00 EDT (06:00 UTC).
fn is_daylight_time(at: DateTime<Utc>) -> bool {
    let year = at.year();
    let start = nth_sunday(year, 3, 2)
        .and_hms_opt(7, 0, 0)
        .unwrap_or_default();
    let end = nth_sunday(year, 11, 1)
        .and_hms_opt(6, 0, 0)
        .unwrap_or_default();
    let naive = at.naive_utc();
    naive >= start && naive < end
}

/// The Eastern offset in force at an instant (-05:00 or -04:00).
pub fn offset_at(at: DateTime<Utc>) -> FixedOffset {
    let seconds = if is_daylight_time(at) { EDT } else { EST };
    FixedOffset::east_opt(seconds).unwrap_or(FixedOffset::east_opt(EST).unwrap_or(Utc.fix()))
}

/// An instant as Eastern Time, with the offset in force then.
pub fn to_eastern(at: DateTime<Utc>) -> DateTime<FixedOffset> {
    at.with_timezone(&offset_at(at))
}

/// An instant as the wall-clock Eastern time a `fromdate`/`todate` parameter takes.
pub fn wall_clock(at: DateTime<Utc>) -> NaiveDateTime {
    to_eastern(at).naive_local()
}

/// The instants a wall-clock Eastern time names: one normally, two in the repeated hour of
/// November, none in the skipped hour of March (then the instant one hour on, as clocks read it).
/// Empty only for a time at the edge of what can be represented.
fn instants(local: NaiveDateTime) -> Vec<DateTime<Utc>> {
    let at_offset = |offset: i32| {
        local
            .checked_sub_signed(chrono::Duration::seconds(i64::from(offset)))
            .map(|utc| Utc.from_utc_datetime(&utc))
    };
    let mut found: Vec<DateTime<Utc>> = [EDT, EST]
        .into_iter()
        .filter_map(at_offset)
        .filter(|utc| offset_at(*utc).local_minus_utc() == local_offset(*utc, local))
        .collect();
    if found.is_empty() {
        found.extend(at_offset(EST));
    }
    found.sort();
    found
}

fn local_offset(utc: DateTime<Utc>, local: NaiveDateTime) -> i32 {
    i32::try_from((local - utc.naive_utc()).num_seconds()).unwrap_or_default()
}

/// The earliest instant a wall-clock Eastern time names (for an inclusive lower bound).
pub fn earliest(local: NaiveDateTime) -> Option<DateTime<Utc>> {
    instants(local).first().copied()
}

/// The latest instant a wall-clock Eastern time names (for an inclusive upper bound).
pub fn latest(local: NaiveDateTime) -> Option<DateTime<Utc>> {
    instants(local).last().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn local(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").unwrap()
    }

    #[test]
    fn times_at_the_edge_of_the_calendar_name_no_instant() {
        assert_eq!(latest(NaiveDateTime::MAX), None);
        assert!(earliest(NaiveDateTime::MIN).is_some());
    }

    #[test]
    fn the_us_rule_second_sunday_of_march_to_first_sunday_of_november() {
        assert_eq!(
            nth_sunday(2026, 3, 2),
            NaiveDate::from_ymd_opt(2026, 3, 8).unwrap()
        );
        assert_eq!(
            nth_sunday(2026, 11, 1),
            NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()
        );
        assert_eq!(
            nth_sunday(2025, 3, 2),
            NaiveDate::from_ymd_opt(2025, 3, 9).unwrap()
        );
        assert_eq!(
            nth_sunday(2025, 11, 1),
            NaiveDate::from_ymd_opt(2025, 11, 2).unwrap()
        );
        let hours = |text| offset_at(utc(text)).local_minus_utc() / 3600;
        assert_eq!(hours("2026-01-15T12:00:00Z"), -5);
        assert_eq!(hours("2026-07-04T12:00:00Z"), -4);
        assert_eq!(hours("2026-03-08T06:59:59Z"), -5, "01:59:59 EST");
        assert_eq!(hours("2026-03-08T07:00:00Z"), -4, "03:00:00 EDT");
        assert_eq!(hours("2026-11-01T05:59:59Z"), -4, "01:59:59 EDT");
        assert_eq!(hours("2026-11-01T06:00:00Z"), -5, "01:00:00 EST");
        assert_eq!(
            to_eastern(utc("2017-02-25T18:59:44Z")).to_rfc3339(),
            "2017-02-25T13:59:44-05:00"
        );
        assert_eq!(
            to_eastern(utc("2017-04-17T18:23:33Z")).to_rfc3339(),
            "2017-04-17T14:23:33-04:00"
        );
    }

    #[test]
    fn wall_clock_times_read_as_eastern() {
        assert_eq!(
            earliest(local("2026-01-15T07:00:00")).unwrap(),
            utc("2026-01-15T12:00:00Z")
        );
        assert_eq!(
            earliest(local("2026-07-04T08:00:00")).unwrap(),
            utc("2026-07-04T12:00:00Z")
        );
        // 01:30 happens twice on 1 November 2026.
        assert_eq!(
            earliest(local("2026-11-01T01:30:00")).unwrap(),
            utc("2026-11-01T05:30:00Z")
        );
        assert_eq!(
            latest(local("2026-11-01T01:30:00")).unwrap(),
            utc("2026-11-01T06:30:00Z")
        );
        // 02:30 never happens on 8 March 2026: clocks jump from 02:00 to 03:00.
        assert_eq!(
            earliest(local("2026-03-08T02:30:00")).unwrap(),
            utc("2026-03-08T07:30:00Z")
        );
    }
}
