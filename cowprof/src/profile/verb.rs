//! `cowprof report DIR`: a profile's views as a table, JSON or CSV, and
//! `--diff OTHER` to compare two profiles.
use std::{collections::BTreeMap, io::Write};

use serde::Serialize;

use cowprof_model::{diff, keys::comm_str, names::Names as _};

use super::{
    dictionary::Dictionary,
    offline::{self, Offline},
    read::Profile,
    scan::Filters,
    ProfileError,
};
use crate::{report::Format, report::Row, sink::tables};
use cowprof_model::state::View;

/// One row of a comparison.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub key: String,
    /// COW faults in the baseline and in the profile.
    pub before: u64,
    pub after: u64,
    pub delta: i64,
}

/// Everything `report --format json` prints.
#[derive(Serialize)]
struct Json<'a> {
    profile: &'a str,
    complete: bool,
    events: u64,
    #[serde(flatten)]
    offline: &'a Offline,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    diff: BTreeMap<View, Vec<Change>>,
}

fn output_error(err: std::io::Error) -> ProfileError {
    ProfileError::Write {
        path: "<stdout>".into(),
        source: err,
    }
}

/// Opens a profile, saying in one line on stderr when it is partial.
fn open(dir: &std::path::Path) -> Result<Profile, ProfileError> {
    let profile = Profile::open(dir)?;
    if !profile.complete() {
        eprintln!(
            "cowprof: warning: {} is partial: its recording did not end cleanly, so the part being written is missing; reporting the {} events of its {} closed parts",
            dir.display(),
            profile.events,
            profile.parts.len()
        );
    }
    Ok(profile)
}

/// `changes` named, largest change first (then by name).
fn named_changes<K>(changes: Vec<diff::Change<K>>, name: impl Fn(&K) -> String) -> Vec<Change> {
    let mut named: Vec<Change> = changes
        .into_iter()
        .map(|c| Change {
            key: name(&c.key),
            before: c.before,
            after: c.after,
            delta: c.delta(),
        })
        .collect();
    named.sort_by(|a, b| {
        b.delta
            .unsigned_abs()
            .cmp(&a.delta.unsigned_abs())
            .then_with(|| a.key.cmp(&b.key))
    });
    named
}

/// What `report` is asked for.
#[derive(Clone, Debug)]
pub struct ReportOptions {
    /// The profile.
    pub dir: std::path::PathBuf,
    pub by: Vec<View>,
    /// Which events count.
    pub filters: Filters,
    /// At most this many rows per view.
    pub top: Option<usize>,
    pub format: Format,
    /// The profile to compare with (the baseline).
    pub diff: Option<std::path::PathBuf>,
}

/// Runs `report` with `args`, printing to `out`.
///
/// # Errors
/// When a profile cannot be read or the output written.
pub fn run(args: &ReportOptions, out: &mut dyn Write) -> Result<(), ProfileError> {
    let filters = &args.filters;
    let profile = open(&args.dir)?;
    // Both profiles are read into one dictionary: their rows compare by key.
    let mut dict = Dictionary::default();
    let after = offline::snapshot(&offline::state(&profile, &args.by, filters, &mut dict)?);
    let mut diff = BTreeMap::new();
    if let Some(other) = &args.diff {
        let before = offline::snapshot(&offline::state(
            &open(other)?,
            &args.by,
            filters,
            &mut dict,
        )?);
        for view in &args.by {
            let mut changes = if *view == View::Process {
                named_changes(diff::processes(&before, &after), |(pid, comm)| {
                    format!("{pid} {}", comm_str(comm))
                })
            } else {
                named_changes(diff::rows(&before, &after, *view), |key| dict.row(key))
            };
            if let Some(n) = args.top {
                changes.truncate(n);
            }
            diff.insert(*view, changes);
        }
    }
    let mut views = offline::named(after, &dict, &args.by);
    if let Some(n) = args.top {
        offline::keep_top(&mut views, n);
    }
    let text = match args.format {
        Format::Json => {
            let json = Json {
                profile: &args.dir.to_string_lossy(),
                complete: profile.complete(),
                events: profile.events,
                offline: &views,
                diff,
            };
            serde_json::to_string_pretty(&json).unwrap_or_default() + "\n"
        }
        Format::Csv => csv(&views, &diff, args.diff.is_some()).map_err(output_error)?,
        Format::Table => table(&views, &diff, args.diff.is_some()),
    };
    out.write_all(text.as_bytes()).map_err(output_error)
}

fn table(views: &Offline, diff: &BTreeMap<View, Vec<Change>>, diffing: bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if diffing {
        for (view, changes) in diff {
            let _ = writeln!(
                out,
                "{:>10} {:>10} {:>10}  {}",
                "BEFORE",
                "AFTER",
                "DELTA",
                view.name().to_uppercase()
            );
            for c in changes {
                let _ = writeln!(
                    out,
                    "{:>10} {:>10} {:>+10}  {}",
                    c.before, c.after, c.delta, c.key
                );
            }
            out.push('\n');
        }
        return out;
    }
    tables::processes(&mut out, &views.processes, &views.totals);
    tables::views(&mut out, &views.views);
    tables::waste(&mut out, &views.waste);
    out
}

fn csv(
    views: &Offline,
    diff: &BTreeMap<View, Vec<Change>>,
    diffing: bool,
) -> std::io::Result<String> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    if diffing {
        w.write_record(["view", "key", "before", "after", "delta"])?;
        for (view, changes) in diff {
            for c in changes {
                w.write_record([
                    view.name(),
                    &c.key,
                    &c.before.to_string(),
                    &c.after.to_string(),
                    &c.delta.to_string(),
                ])?;
            }
        }
    } else {
        let kinds = cowprof_common::Kind::ALL.map(cowprof_common::Kind::name);
        let mut header = vec!["view", "key"];
        header.extend(kinds);
        header.extend(["copies", "processes", "first_writer"]);
        w.write_record(&header)?;
        let mut record = |view: &str, key: &str, r: &Row| {
            let mut fields = vec![view.to_owned(), key.to_owned()];
            fields.extend(
                cowprof_common::Kind::ALL
                    .iter()
                    .map(|k| r.counts.get(*k).to_string()),
            );
            fields.extend([
                r.copies.to_string(),
                r.processes.to_string(),
                r.first_writer.clone(),
            ]);
            w.write_record(&fields)
        };
        for p in &views.processes {
            let row = Row {
                copies: p.counts.copies(),
                counts: p.counts,
                processes: 1,
                first_writer: p.comm.clone(),
                ..Row::default()
            };
            record("process", &p.pid.to_string(), &row)?;
        }
        for (view, rows) in &views.views {
            for r in rows {
                record(view.name(), &r.key, r)?;
            }
        }
    }
    let bytes = w.into_inner().map_err(::csv::IntoInnerError::into_error)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
