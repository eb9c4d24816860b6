//! TEMPORARY STUB (replaced by the real engine).
use chrono::{DateTime, Utc};
#[derive(Clone, Debug, PartialEq)]
pub struct DateFormat(String);
#[derive(Debug, thiserror::Error)]
#[error("bad format {0}")]
pub struct FormatError(String);
#[derive(Debug, thiserror::Error)]
#[error("bad date")]
pub struct DateParseError;
#[derive(Debug, thiserror::Error)]
#[error("unknown timezone \"{0}\"")]
pub struct ZoneError(String);
impl DateFormat {
    pub fn new(spec: &str) -> Result<DateFormat, FormatError> {
        if spec.contains('Q') {
            return Err(FormatError(spec.into()));
        }
        Ok(DateFormat(spec.into()))
    }
    pub fn spec(&self) -> &str {
        &self.0
    }
    pub fn format(&self, _i: DateTime<Utc>, _z: &Zone) -> String {
        todo!()
    }
    pub fn parse(&self, _t: &str, _z: &Zone) -> Result<DateTime<Utc>, DateParseError> {
        todo!()
    }
    pub fn parse_json(
        &self,
        _t: &serde_json::Value,
        _z: &Zone,
    ) -> Result<DateTime<Utc>, DateParseError> {
        todo!()
    }
    pub fn fraction_digits(&self) -> u8 {
        0
    }
    pub fn has_dotless_fraction(&self) -> bool {
        self.0.contains("ssS")
    }
    pub fn has_zone_field(&self) -> bool {
        false
    }
}
#[derive(Clone, Debug, PartialEq)]
pub struct Zone(String);
impl Zone {
    pub fn utc() -> Zone {
        Zone("UTC".into())
    }
    pub fn parse(name: &str) -> Result<Zone, ZoneError> {
        if name.contains("Mars") {
            Err(ZoneError(name.into()))
        } else {
            Ok(Zone(name.into()))
        }
    }
    pub fn name(&self) -> &str {
        &self.0
    }
}
