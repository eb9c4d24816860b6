//! Timezones: [`Zone`] (an IANA zone with its DST rules, or a fixed offset), reading their
//! names and offsets, the offset and abbreviation in force at an instant, and resolving a local
//! time the way Java's lenient calendar does (gaps shift forward, overlaps take the earlier
//! instant). Also how Java prints offsets, which `format` uses.

use chrono::{DateTime, FixedOffset, LocalResult, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::{OffsetName, Tz};

use super::ZoneError;
use super::cursor::{Cursor, read_signed_offset};

/// A timezone: an IANA zone (with its DST rules) or a fixed offset from UTC.
#[derive(Clone, Debug, PartialEq)]
pub struct Zone {
    name: String,
    rules: ZoneRules,
}

#[derive(Clone, Debug, PartialEq)]
enum ZoneRules {
    /// `label` is what the `z` letter prints, as Java would: "UTC", "GMT", "GMT+02:00".
    Fixed {
        offset: FixedOffset,
        label: String,
    },
    Iana(Tz),
}

impl Zone {
    pub fn utc() -> Zone {
        Zone::zero_offset("UTC", "UTC")
    }

    /// GMT, the zone of `${gmtDate:...}`.
    pub fn gmt() -> Zone {
        Zone::zero_offset("GMT", "GMT")
    }

    /// Accepts "UTC", "GMT", "Z", offsets with or without a GMT/UTC prefix ("GMT+02:00",
    /// "GMT-5", "UTC+0530", "+02:00") and IANA names ("Europe/Berlin"), the latter
    /// case-insensitively when the exact spelling is unknown.
    pub fn parse(name: &str) -> Result<Zone, ZoneError> {
        let trimmed = name.trim();
        if let Some(rules) = fixed_zone_rules(trimmed) {
            return Ok(Zone {
                name: trimmed.to_string(),
                rules,
            });
        }
        match find_iana_zone(trimmed) {
            Some(tz) => Ok(Zone {
                name: trimmed.to_string(),
                rules: ZoneRules::Iana(tz),
            }),
            None => Err(ZoneError::Unknown {
                name: name.to_string(),
            }),
        }
    }

    /// The name as configured (trimmed).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// An IANA zone under the name it was found by (in date text, say).
    pub(super) fn from_iana(name: String, tz: Tz) -> Zone {
        Zone {
            name,
            rules: ZoneRules::Iana(tz),
        }
    }

    fn zero_offset(name: &str, label: &str) -> Zone {
        Zone {
            name: name.to_string(),
            rules: ZoneRules::Fixed {
                offset: utc_offset(),
                label: label.to_string(),
            },
        }
    }

    pub(super) fn offset_at(&self, instant: DateTime<Utc>) -> FixedOffset {
        match &self.rules {
            ZoneRules::Fixed { offset, .. } => *offset,
            ZoneRules::Iana(tz) => tz.offset_from_utc_datetime(&instant.naive_utc()).fix(),
        }
    }

    /// What `z` prints: the zone's abbreviation when it has a real one, else "GMT+hh:mm" like
    /// Java does for zones it has no name for (tzdb writes "+0530"-style placeholders there).
    pub(super) fn abbreviation_at(&self, instant: DateTime<Utc>) -> String {
        match &self.rules {
            ZoneRules::Fixed { label, .. } => label.clone(),
            ZoneRules::Iana(tz) => {
                let offset = tz.offset_from_utc_datetime(&instant.naive_utc());
                match offset.abbreviation() {
                    Some(name) if name.starts_with(|c: char| c.is_ascii_alphabetic()) => {
                        name.to_string()
                    }
                    _ => gmt_label(offset.fix()),
                }
            }
        }
    }

    pub(super) fn local_offsets(&self, local: NaiveDateTime) -> LocalResult<FixedOffset> {
        match &self.rules {
            ZoneRules::Fixed { offset, .. } => LocalResult::Single(*offset),
            ZoneRules::Iana(tz) => tz.offset_from_local_datetime(&local).map(|o| o.fix()),
        }
    }

    /// The instant of a local time, resolved like Java's lenient calendar: a time in a DST gap
    /// is shifted forward by the gap, a time in a fall-back overlap is the earlier instant.
    pub(super) fn resolve_local(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.local_offsets(local) {
            LocalResult::Single(offset) => local_to_utc(local, offset),
            LocalResult::Ambiguous(a, b) => {
                let first = local_to_utc(local, a)?;
                let second = local_to_utc(local, b)?;
                Some(first.min(second))
            }
            LocalResult::None => local_to_utc(local, self.offset_before_gap(local)?),
        }
    }

    /// The offset in force just before the DST gap that swallows `local`. Interpreting the
    /// missing local time with it lands after the gap, shifted forward by the gap's length.
    fn offset_before_gap(&self, local: NaiveDateTime) -> Option<FixedOffset> {
        // Gaps are an hour or less almost everywhere; Samoa once skipped a whole day.
        (1..=48).find_map(|hours| {
            let probe = local.checked_sub_signed(TimeDelta::try_hours(hours)?)?;
            match self.local_offsets(probe) {
                LocalResult::Single(offset) => Some(offset),
                LocalResult::Ambiguous(_, later) => Some(later),
                LocalResult::None => None,
            }
        })
    }

    /// The offset a zone abbreviation found in date text ("CEST", "EST") stands for in this zone
    /// around the local time `local`, if this zone uses that abbreviation there.
    pub(super) fn offset_for_abbreviation(
        &self,
        local: NaiveDateTime,
        name: &str,
    ) -> Option<FixedOffset> {
        match &self.rules {
            ZoneRules::Fixed { offset, label } => {
                label.eq_ignore_ascii_case(name).then_some(*offset)
            }
            ZoneRules::Iana(tz) => {
                // The offsets valid at that local time first, then those on either side of a
                // nearby transition, so "02:30 EDT" on the spring-forward day still resolves.
                let local_candidates = match tz.offset_from_local_datetime(&local) {
                    LocalResult::Single(o) => vec![o],
                    LocalResult::Ambiguous(a, b) => vec![a, b],
                    LocalResult::None => Vec::new(),
                };
                let nearby = [-14, 14].into_iter().filter_map(|hours| {
                    let probe = local.checked_add_signed(TimeDelta::try_hours(hours)?)?;
                    Some(tz.offset_from_utc_datetime(&probe))
                });
                local_candidates
                    .into_iter()
                    .chain(nearby)
                    .find(|o| {
                        o.abbreviation()
                            .is_some_and(|a| a.eq_ignore_ascii_case(name))
                    })
                    .map(|o| o.fix())
            }
        }
    }
}

pub(super) fn utc_offset() -> FixedOffset {
    Utc.fix()
}

pub(super) fn local_to_utc(local: NaiveDateTime, offset: FixedOffset) -> Option<DateTime<Utc>> {
    offset
        .from_local_datetime(&local)
        .single()
        .map(|dt| dt.with_timezone(&Utc))
}

/// "UTC"/"GMT"/"Z" and offsets, with or without a "GMT"/"UTC" prefix.
fn fixed_zone_rules(name: &str) -> Option<ZoneRules> {
    let zero = |label: &str| ZoneRules::Fixed {
        offset: utc_offset(),
        label: label.to_string(),
    };
    if ["UTC", "UT", "Z"]
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name))
    {
        return Some(zero("UTC"));
    }
    if name.eq_ignore_ascii_case("GMT") {
        return Some(zero("GMT"));
    }
    let offset_text = strip_gmt_prefix(name).unwrap_or(name);
    if !offset_text.starts_with(['+', '-']) {
        return None;
    }
    let mut cursor = Cursor::new(offset_text);
    let offset = read_signed_offset(&mut cursor)?;
    cursor.is_done().then(|| ZoneRules::Fixed {
        offset,
        label: gmt_label(offset),
    })
}

/// The rest after a case-insensitive "GMT" or "UTC" prefix.
fn strip_gmt_prefix(name: &str) -> Option<&str> {
    let prefix = name.get(..3)?;
    let is_gmt = prefix.eq_ignore_ascii_case("GMT") || prefix.eq_ignore_ascii_case("UTC");
    is_gmt.then(|| name.get(3..)).flatten()
}

pub(super) fn find_iana_zone(name: &str) -> Option<Tz> {
    if let Ok(tz) = name.parse::<Tz>() {
        return Some(tz);
    }
    chrono_tz::TZ_VARIANTS
        .iter()
        .find(|tz| tz.name().eq_ignore_ascii_case(name))
        .copied()
}

/// "GMT+02:00", Java's name for a zone that is only an offset.
fn gmt_label(offset: FixedOffset) -> String {
    format!("GMT{}", offset_text(offset, OffsetStyle::Colon))
}

#[derive(Clone, Copy)]
pub(super) enum OffsetStyle {
    /// "+02"
    Hours,
    /// "+0200"
    Compact,
    /// "+02:00"
    Colon,
}

/// An offset as Java prints it; seconds (only in historical local mean times) are dropped.
pub(super) fn offset_text(offset: FixedOffset, style: OffsetStyle) -> String {
    let seconds = offset.local_minus_utc();
    let sign = if seconds < 0 { '-' } else { '+' };
    let minutes_total = seconds.unsigned_abs() / 60;
    let (hours, minutes) = (minutes_total / 60, minutes_total % 60);
    match style {
        OffsetStyle::Hours => format!("{sign}{hours:02}"),
        OffsetStyle::Compact => format!("{sign}{hours:02}{minutes:02}"),
        OffsetStyle::Colon => format!("{sign}{hours:02}:{minutes:02}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dates::test_support::*;

    #[test]
    fn berlin_summer_and_winter() {
        let pattern = "yyyy-MM-dd HH:mm:ss";
        assert_eq!(
            format(pattern, "2026-07-15T10:00:00Z", "Europe/Berlin"),
            "2026-07-15 12:00:00"
        );
        assert_eq!(
            format(pattern, "2026-01-15T10:00:00Z", "Europe/Berlin"),
            "2026-01-15 11:00:00"
        );
        parses_to(
            pattern,
            "2026-07-15 12:00:00",
            "Europe/Berlin",
            "2026-07-15T10:00:00Z",
        );
        parses_to(
            pattern,
            "2026-01-15 11:00:00",
            "Europe/Berlin",
            "2026-01-15T10:00:00Z",
        );
    }

    #[test]
    fn new_york_gap_shifts_forward_and_overlap_takes_the_earlier_instant() {
        let pattern = "yyyy-MM-dd HH:mm:ss";
        // 02:30 does not exist on 2026-03-08: Java's lenient calendar reads it as 03:30 EDT.
        parses_to(
            pattern,
            "2026-03-08 02:30:00",
            "America/New_York",
            "2026-03-08T07:30:00Z",
        );
        // 01:30 happens twice on 2026-11-01: first in EDT (-4), then in EST (-5).
        parses_to(
            pattern,
            "2026-11-01 01:30:00",
            "America/New_York",
            "2026-11-01T05:30:00Z",
        );
        parses_to(
            "yyyy-MM-dd HH:mm:ss z",
            "2026-11-01 01:30:00 EST",
            "America/New_York",
            "2026-11-01T06:30:00Z",
        );
    }

    #[test]
    fn fixed_offset_zones() {
        assert_eq!(format("XXX z", WATERMARK, "GMT+02:00"), "+02:00 GMT+02:00");
        assert_eq!(format("XXX z", WATERMARK, "GMT-05:30"), "-05:30 GMT-05:30");
        assert_eq!(format("XXX", WATERMARK, "GMT-5"), "-05:00");
        assert_eq!(format("XXX", WATERMARK, "UTC+0530"), "+05:30");
        assert_eq!(format("XXX", WATERMARK, "+02:00"), "+02:00");
        assert_eq!(format("XXX z", WATERMARK, "Z"), "Z UTC");
        parses_to(
            "yyyy-MM-dd HH:mm",
            "2026-11-25 07:29",
            "GMT-05:30",
            "2026-11-25T12:59:00Z",
        );
        assert_eq!(zone("GMT+02:00").name(), "GMT+02:00");
    }

    #[test]
    fn zone_names_are_iana_or_offsets() {
        assert_eq!(
            Zone::parse("europe/berlin"),
            Zone::parse("Europe/Berlin").map(|z| Zone {
                name: "europe/berlin".to_string(),
                ..z
            })
        );
        assert_eq!(Zone::parse("UTC"), Ok(Zone::utc()));
        assert_eq!(Zone::parse("GMT"), Ok(Zone::gmt()));
        assert_eq!(
            Zone::parse("Mars/Olympus").map_err(|e| e.to_string()),
            Err("unknown timezone \"Mars/Olympus\"".to_string())
        );
        for bad in ["", "GMT+25", "GMT+02:61", "+", "GMT+02:0", "UTC+02x"] {
            assert!(Zone::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
