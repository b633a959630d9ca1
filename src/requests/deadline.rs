//! Legal deadlines of data-subject requests.
//!
//! - GDPR Art. 12(3): "without undue delay and in any event within one month of receipt",
//!   extendable "by two further months". A month is a calendar month: the same day of the next
//!   month, or its last day when it has no such day (31 January → 28 or 29 February). The
//!   extended deadline counts three months from receipt (31 January → 30 April), not two months
//!   from the first deadline (which would give 28 April), as the EDPB's guidelines on the right
//!   of access read it.
//! - CCPA §1798.130(a)(2): 45 calendar days from receipt, extendable once by 45 more (90 in
//!   all).
//!
//! Deadlines keep the time of day of receipt and are not moved for weekends or public holidays
//! (Regulation 1182/71 would move a deadline falling on one to the next working day; not moving
//! it is the earlier, safer answer, and holidays differ by member state).

use chrono::{Days, Months, NaiveDateTime};

use super::Regulation;

/// The first deadline of a request received at `received`.
pub(crate) fn initial(regulation: Regulation, received: NaiveDateTime) -> NaiveDateTime {
    match regulation {
        Regulation::Gdpr => add_months(received, 1),
        Regulation::Ccpa => add_days(received, 45),
    }
}

/// The deadline once extended (allowed once).
pub(crate) fn extended(regulation: Regulation, received: NaiveDateTime) -> NaiveDateTime {
    match regulation {
        Regulation::Gdpr => add_months(received, 3),
        Regulation::Ccpa => add_days(received, 90),
    }
}

fn add_months(at: NaiveDateTime, months: u32) -> NaiveDateTime {
    // `checked_add_months` clamps to the month's last day; it fails only past year 262143.
    at.checked_add_months(Months::new(months))
        .unwrap_or(NaiveDateTime::MAX)
}

fn add_days(at: NaiveDateTime, days: u64) -> NaiveDateTime {
    at.checked_add_days(Days::new(days))
        .unwrap_or(NaiveDateTime::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap()
    }

    #[test]
    fn a_gdpr_month_ends_on_the_same_day_or_the_last_day_of_a_shorter_month() {
        let cases = [
            ("2027-01-15 09:30", "2027-02-15 09:30"),
            ("2027-01-31 09:30", "2027-02-28 09:30"), // no 31 February
            ("2028-01-31 09:30", "2028-02-29 09:30"), // leap year
            ("2028-01-30 00:00", "2028-02-29 00:00"),
            ("2028-02-29 23:59", "2028-03-29 23:59"),
            ("2027-03-31 12:00", "2027-04-30 12:00"),
            ("2027-12-31 12:00", "2028-01-31 12:00"), // across the year
            ("2100-01-31 08:00", "2100-02-28 08:00"), // 2100 is not a leap year
            ("2000-01-31 08:00", "2000-02-29 08:00"), // 2000 is
        ];
        for (received, due) in cases {
            assert_eq!(
                initial(Regulation::Gdpr, at(received)),
                at(due),
                "{received}"
            );
        }
    }

    #[test]
    fn a_gdpr_extension_counts_three_months_from_receipt() {
        let cases = [
            ("2027-01-31 09:30", "2027-04-30 09:30"),
            ("2027-11-30 09:30", "2028-02-29 09:30"),
            ("2026-11-30 09:30", "2027-02-28 09:30"),
            ("2027-10-15 10:00", "2028-01-15 10:00"),
        ];
        for (received, due) in cases {
            assert_eq!(
                extended(Regulation::Gdpr, at(received)),
                at(due),
                "{received}"
            );
        }
    }

    #[test]
    fn ccpa_counts_calendar_days_through_leap_days() {
        let cases = [
            ("2027-01-20 10:00", "2027-03-06 10:00", "2027-04-20 10:00"),
            ("2028-01-20 10:00", "2028-03-05 10:00", "2028-04-19 10:00"),
            ("2027-12-31 10:00", "2028-02-14 10:00", "2028-03-30 10:00"),
        ];
        for (received, due, later) in cases {
            assert_eq!(
                initial(Regulation::Ccpa, at(received)),
                at(due),
                "{received}"
            );
            assert_eq!(
                extended(Regulation::Ccpa, at(received)),
                at(later),
                "{received}"
            );
        }
    }
}
