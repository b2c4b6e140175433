//! The list of conformance cases we do not run, each with its reason.
//!
//! File format (`tests/conformance-skips.txt`), one rule per line, `#` starts a comment:
//!
//! ```text
//! network <NAME>: <reason>
//! case <EXACT CASE NAME>: <reason>
//! file <PATH SUFFIX>: <reason>
//! ```

/// Skip rules: by network name, by exact case name, or by fixture file path suffix.
#[derive(Debug, Clone, Default)]
pub struct SkipList {
    networks: Vec<(String, String)>,
    cases: Vec<(String, String)>,
    files: Vec<(String, String)>,
}

impl SkipList {
    /// Parses a skip file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut list = Self::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad =
                || format!("skip file line {}: expected `network|case|file NAME: reason`", n + 1);
            let (kind, rest) = line.split_once(' ').ok_or_else(bad)?;
            let (name, reason) = rest.rsplit_once(": ").ok_or_else(bad)?;
            let entry = (name.trim().to_string(), reason.trim().to_string());
            if entry.0.is_empty() || entry.1.is_empty() {
                return Err(bad());
            }
            match kind {
                "network" => list.networks.push(entry),
                "case" => list.cases.push(entry),
                "file" => list.files.push(entry),
                _ => return Err(bad()),
            }
        }
        Ok(list)
    }

    /// Reads a skip file; a missing or unreadable file is an error (never an empty list).
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("skip file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Why a case of fixture file `file` is skipped, if it is.
    pub fn reason(&self, file: &str, case: &str, network: &str) -> Option<&str> {
        self.cases
            .iter()
            .find(|(n, _)| n == case)
            .or_else(|| self.files.iter().find(|(suffix, _)| file.ends_with(suffix.as_str())))
            .or_else(|| self.networks.iter().find(|(n, _)| n == network))
            .map(|(_, r)| r.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_match() {
        let list = SkipList::parse(
            "# c\nnetwork Constantinople: no rules\ncase a::b[x: y]: too slow\nfile st/x.json: gap\n",
        )
        .unwrap();
        assert_eq!(list.reason("f.json", "zz", "Constantinople"), Some("no rules"));
        assert_eq!(list.reason("f.json", "a::b[x: y]", "Cancun"), Some("too slow"));
        assert_eq!(list.reason("dir/st/x.json", "q", "Cancun"), Some("gap"));
        assert_eq!(list.reason("dir/st/y.json", "a", "Cancun"), None);
        assert!(SkipList::parse("bogus line").is_err());
        assert!(SkipList::parse("network X:").is_err());
        assert!(SkipList::parse("thing X: y").is_err());
    }

    #[test]
    fn a_missing_skip_file_is_an_error() {
        let missing =
            std::env::temp_dir().join(format!("no-such-skips-{}.txt", std::process::id()));
        let err = SkipList::load(&missing).unwrap_err();
        assert!(err.contains("no-such-skips"), "{err}");
    }

    #[test]
    fn the_shipped_skip_file_parses() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/conformance-skips.txt");
        let list = SkipList::load(&path).unwrap();
        assert!(list.reason("f.json", "x", "Constantinople").is_some());
    }
}
