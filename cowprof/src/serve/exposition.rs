//! The two exposition formats and how a scrape picks one.
//!
//! prometheus-client writes the OpenMetrics text format only. The
//! Prometheus text format (0.0.4) carries the same samples; it differs in
//! its metadata lines, which [`prometheus_text`] rewrites:
//! - a counter family `x` (samples `x_total`) is typed as `x_total`;
//! - an info family `x` (sample `x_info`) becomes the gauge `x_info`;
//! - `# UNIT` and `# EOF` do not exist in it.
//!
//! `Accept` is read as RFC 9110 says: the most specific media range that
//! matches each format gives its quality; OpenMetrics wins only when its
//! quality is higher, so a client that names neither (curl) gets the
//! Prometheus text format.

use std::fmt::Write as _;

/// `Content-Type` of the OpenMetrics text format.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// `Content-Type` of the Prometheus text format.
pub const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A scrape's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Prometheus,
}

impl Format {
    /// The format an `Accept` header asks for.
    #[must_use]
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Prometheus;
        };
        let openmetrics = quality(accept, "application", "openmetrics-text");
        let text = quality(accept, "text", "plain");
        if openmetrics > text {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    #[must_use]
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS,
            Format::Prometheus => PROMETHEUS,
        }
    }
}

/// The quality (in thousandths) `accept` gives `kind/sub`: that of the most
/// specific range matching it, 0 when none does.
fn quality(accept: &str, kind: &str, sub: &str) -> u32 {
    let mut best: Option<(u8, u32)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let Some((k, s)) = parts.next().and_then(|m| m.split_once('/')) else {
            continue;
        };
        let specificity = match (k.trim(), s.trim()) {
            (k, s) if k.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(sub) => 2,
            (k, "*") if k.eq_ignore_ascii_case(kind) => 1,
            ("*", "*") => 0,
            _ => continue,
        };
        let q = parts
            .filter_map(|p| p.split_once('='))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
            .map_or(1000, |(_, v)| thousandths(v.trim()));
        if best.is_none_or(|(s, _)| specificity > s) {
            best = Some((specificity, q));
        }
    }
    best.map_or(0, |(_, q)| q)
}

/// A qvalue (`0`, `0.5`, `1.000`) in thousandths; malformed ones are 0.
fn thousandths(v: &str) -> u32 {
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    let digits: String = frac.chars().chain("000".chars()).take(3).collect();
    match (whole, digits.parse::<u32>()) {
        ("0", Ok(f)) if frac.len() <= 3 => f,
        ("1", Ok(_)) => 1000,
        _ => 0,
    }
}

/// Rewrites prometheus-client's OpenMetrics text in the Prometheus text
/// format (see the module docs).
#[must_use]
pub fn prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // The families whose metadata names change, and what they become.
    let mut renamed: Vec<(&str, String)> = Vec::new();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some((name, kind)) = rest.split_once(' ') {
                let (new_name, new_kind) = match kind {
                    "counter" => (format!("{name}_total"), "counter"),
                    "info" => (format!("{name}_info"), "gauge"),
                    "unknown" => (name.to_owned(), "untyped"),
                    other => (name.to_owned(), other),
                };
                let _ = writeln!(out, "# TYPE {new_name} {new_kind}");
                renamed.push((name, new_name));
                continue;
            }
        }
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    // HELP comes before TYPE: rename it in a second pass.
    let mut fixed = String::with_capacity(out.len());
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some((name, help)) = rest.split_once(' ') {
                if let Some((_, new_name)) = renamed.iter().find(|(n, _)| *n == name) {
                    let _ = writeln!(fixed, "# HELP {new_name} {help}");
                    continue;
                }
            }
        }
        fixed.push_str(line);
        fixed.push('\n');
    }
    fixed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_scrapers_get_openmetrics_and_others_the_text_format() {
        // What Prometheus 2.x sends.
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(None), Format::Prometheus);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Prometheus, "curl");
        assert_eq!(
            Format::negotiate(Some("text/plain;q=0.2, application/openmetrics-text;q=0.9")),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::negotiate(Some("application/*;q=0.3, text/*;q=0.4")),
            Format::Prometheus
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0, */*")),
            Format::Prometheus,
            "q=0 refuses"
        );
        assert_eq!(Format::negotiate(Some("garbage")), Format::Prometheus);
    }

    #[test]
    fn qvalues_parse_as_rfc_9110_writes_them() {
        assert_eq!(thousandths("1"), 1000);
        assert_eq!(thousandths("1.000"), 1000);
        assert_eq!(thousandths("0.5"), 500);
        assert_eq!(thousandths("0.075"), 75);
        assert_eq!(thousandths("0"), 0);
        assert_eq!(thousandths("0.0001"), 0);
        assert_eq!(thousandths("x"), 0);
    }

    #[test]
    fn metadata_is_rewritten_and_samples_are_kept() {
        let om = "# HELP a_faults Faults.\n# TYPE a_faults counter\na_faults_total{kind=\"x\"} 3\n\
                  # HELP a_copied_bytes Bytes.\n# TYPE a_copied_bytes counter\n# UNIT a_copied_bytes bytes\na_copied_bytes_total 4096\n\
                  # HELP a_probe Probe.\n# TYPE a_probe info\na_probe_info{strategy=\"t\"} 1\n\
                  # HELP a_lat_seconds Lat.\n# TYPE a_lat_seconds histogram\n# UNIT a_lat_seconds seconds\na_lat_seconds_sum 0.5\n# EOF\n";
        let text = prometheus_text(om);
        assert_eq!(
            text,
            "# HELP a_faults_total Faults.\n# TYPE a_faults_total counter\na_faults_total{kind=\"x\"} 3\n\
             # HELP a_copied_bytes_total Bytes.\n# TYPE a_copied_bytes_total counter\na_copied_bytes_total 4096\n\
             # HELP a_probe_info Probe.\n# TYPE a_probe_info gauge\na_probe_info{strategy=\"t\"} 1\n\
             # HELP a_lat_seconds Lat.\n# TYPE a_lat_seconds histogram\na_lat_seconds_sum 0.5\n"
        );
    }
}
