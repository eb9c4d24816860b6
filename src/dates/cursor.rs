//! Reading text a character at a time: [`Cursor`], and the signed offsets ("+02", "+0200",
//! "+02:00") that both zone names (`GMT+02:00`) and date text carry.

use chrono::FixedOffset;

/// A position in the text being parsed. `pos` is a byte index that only ever moves by whole
/// characters, so slicing at it cannot split a UTF-8 sequence.
pub(super) struct Cursor<'a> {
    pub(super) text: &'a str,
    pub(super) pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Cursor { text, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or("")
    }

    pub(super) fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    pub(super) fn is_done(&self) -> bool {
        self.rest().is_empty()
    }

    pub(super) fn eat(&mut self, expected: char) -> bool {
        if self.peek() == Some(expected) {
            self.pos += expected.len_utf8();
            true
        } else {
            false
        }
    }

    /// Consumes up to `max` ASCII digits and returns them.
    pub(super) fn digits(&mut self, max: usize) -> &'a str {
        let rest = self.rest();
        let len = rest
            .bytes()
            .take(max)
            .take_while(u8::is_ascii_digit)
            .count();
        self.pos += len;
        rest.get(..len).unwrap_or("")
    }

    /// Consumes `name` if the text continues with it, ignoring ASCII case.
    pub(super) fn eat_ignore_case(&mut self, name: &str) -> bool {
        let matches = self
            .rest()
            .get(..name.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(name));
        if matches {
            self.pos += name.len();
        }
        matches
    }

    /// Consumes a run of characters that may form a zone identifier ("Europe/Berlin").
    pub(super) fn zone_identifier(&mut self) -> &'a str {
        let rest = self.rest();
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+')))
            .unwrap_or(rest.len());
        self.pos += len;
        rest.get(..len).unwrap_or("")
    }

    /// 1-based character position, for messages.
    pub(super) fn char_position(&self, byte_pos: usize) -> usize {
        self.text.get(..byte_pos).map_or(0, |s| s.chars().count()) + 1
    }
}

/// Reads "+hh", "+hhmm", "+hh:mm" (or '-'); hours 0-23 and minutes 0-59 like Java's offsets.
pub(super) fn read_signed_offset(cursor: &mut Cursor<'_>) -> Option<FixedOffset> {
    let sign = if cursor.eat('+') {
        1
    } else if cursor.eat('-') {
        -1
    } else {
        return None;
    };
    let hours: i32 = cursor.digits(2).parse().ok()?;
    let minutes: i32 = if cursor.eat(':') || cursor.peek().is_some_and(|c| c.is_ascii_digit()) {
        let text = cursor.digits(2);
        if text.len() != 2 {
            return None;
        }
        text.parse().ok()?
    } else {
        0
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}
