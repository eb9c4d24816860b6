//! TEMPORARY STUB (replaced by the real module).
use crate::dates::Zone;
use std::collections::BTreeMap;
#[derive(Clone, Debug)]
pub struct UrlTemplate(String);
#[derive(Debug, Clone)]
pub struct MacroError {
    pub offset: usize,
    pub message: String,
}
impl std::fmt::Display for MacroError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
#[derive(Debug, Clone)]
pub struct MacroWarning {
    pub offset: usize,
    pub message: String,
}
#[derive(Debug, thiserror::Error)]
#[error("missing path parameter {0}")]
pub struct ExpandError(String);
impl UrlTemplate {
    pub fn parse(url: &str) -> Result<UrlTemplate, Vec<MacroError>> {
        if url.contains("${foo") {
            return Err(vec![MacroError {
                offset: 0,
                message: "unknown macro".into(),
            }]);
        }
        Ok(UrlTemplate(url.into()))
    }
    pub fn raw(&self) -> &str {
        &self.0
    }
    pub fn path_params(&self) -> Vec<&str> {
        let mut out = vec![];
        let mut rest = self.0.as_str();
        while let Some(i) = rest.find('{') {
            let after = &rest[i + 1..];
            if let Some(j) = after.find('}') {
                if i == 0 || !rest[..i].ends_with('$') {
                    out.push(&after[..j]);
                }
                rest = &after[j + 1..];
            } else {
                break;
            }
        }
        out
    }
    pub fn has_date_macro(&self) -> bool {
        self.0.contains("${date:") || self.0.contains("${gmtDate:")
    }
    pub fn warnings(&self) -> Vec<MacroWarning> {
        vec![]
    }
    pub fn expand(
        &self,
        _w: chrono::DateTime<chrono::Utc>,
        _z: &Zone,
        _p: &BTreeMap<String, String>,
    ) -> Result<String, ExpandError> {
        todo!()
    }
}
